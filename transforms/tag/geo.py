"""Countries and places: what the story is about, from where it was filed and what it names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

import pycountry

from wirestream.transforms.tag.gazetteer import (MIN_TOWN_POPULATION_IN_TEXT, Entry, Gazetteer, load_gazetteer,
                                      tokens_of)
from wirestream.transforms.tag.text import is_shouted, name_key

# "PORTLAND, Ore., March 3 - ", "KYIV, Ukraine (Reuters) - ", "New York, March 5 - ".
# Words are single-space separated capitalised tokens, which keeps matching linear.
_CAP_WORD = r"[A-ZÀ-ÖØ-Þ][\w.'’-]*"
_DATELINE = re.compile(
    rf"^\s*(?P<place>{_CAP_WORD}(?: {_CAP_WORD}){{0,4}})"
    rf"(?:, (?P<region>{_CAP_WORD}(?: {_CAP_WORD}){{0,3}}))?"
    r"(?: \((?P<agency>[^()\n]{1,40})\))?,? +"
    r"(?P<date>(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? +\d{1,2} *)?[-—–]+(?:\s|\Z)")


@dataclass(frozen=True)
class Dateline:
    place: str
    region: Optional[str]
    end: int  # where the story text starts after it


def parse_dateline(text: str) -> Optional[Dateline]:
    """The wire dateline opening a body, or a format's dateline field (which may end at
    its dash); capitals or a date are required so that an ordinary first sentence with
    a dash is not taken for one."""
    m = _DATELINE.match(text[:120])
    if not m or not (m.group("date") or m.group("agency") or is_shouted(m.group("place"))):
        return None
    return Dateline(m.group("place").strip(), m.group("region"), m.end())


@dataclass
class Mention:
    """A name found in the text with everything it may refer to."""

    text: str
    start: int
    length: int
    candidates: list[Entry]
    in_headline: bool = False


def usable_in_text(entry: Entry, shouted: bool) -> bool:
    """Small towns and names that are usually common words count only in datelines."""
    if entry.common_word or 0 < entry.population < MIN_TOWN_POPULATION_IN_TEXT:
        return False
    return entry.major or not shouted


# A smaller namesake in a country the story names wins over the best-known town only
# when it is at least this big relative to it (London, Ontario never beats London).
DATELINE_NAMESAKE_RATIO = 0.25


def _key(text: str, gaz: Gazetteer) -> tuple[str, ...]:
    return tuple(t for t in tokens_of(text, is_shouted(text), gaz) if t)


def resolve_dateline(dateline: Dateline, gaz: Gazetteer, countries_named: set[str]) -> Optional[Entry]:
    """The dateline's place. Every town in the gazetteer is a candidate; the region
    ("Ore.", "West Germany") decides first, then a country the story names, then size.
    A town missing from the gazetteer still gives its region's country."""
    key = _key(dateline.place, gaz)
    name = " ".join(key)
    candidates = [e for e in gaz.names.get(key) if e.kind in ("place", "country")]
    if dateline.region:
        region_key = _key(dateline.region, gaz)
        region_country = gaz.dateline_regions.get(region_key) or next(
            (e.country for e in gaz.names.get(region_key) if e.kind in ("country", "place")), None)
        if region_country:
            return next((e for e in candidates if e.country == region_country), None) or Entry(
                "place", name, region_country, {"name": name, "kind": "city", "country": region_country})
    if not candidates:
        return None
    biggest = candidates[0]
    for entry in candidates:
        if entry.country in countries_named and (
                entry.population >= DATELINE_NAMESAKE_RATIO * biggest.population or not entry.population):
            return entry
    return biggest


def _existed(entry: Entry, published_at: Optional[str], gaz: Gazetteer) -> bool:
    """Georgia in 1987 was no country (it was in the Soviet Union): read it as the US state."""
    if entry.kind != "country" or not published_at:
        return True
    return not any(entry.country in s.successors and published_at[:10] < s.dissolved for s in gaz.historic)


def choose(mention: Mention, context: set[str], published_at: Optional[str], gaz: Gazetteer) -> Entry:
    """One meaning for an ambiguous name: one in a country the story names elsewhere,
    else the first that existed when the story was published, else the first."""
    candidates = mention.candidates
    if len(candidates) > 1:
        candidates = [e for e in candidates if _existed(e, published_at, gaz)] or candidates
        for entry in candidates:
            if entry.country in context:
                return entry
    return candidates[0]


def historic_code(country: str, published_at: Optional[str], gaz: Gazetteer) -> str:
    """Kiev in 1987 was in the Soviet Union: before a state dissolved, its
    successors' codes are reported as the historic state's ISO 3166-3 code."""
    if published_at:
        for state in gaz.historic:
            if country in state.successors and published_at[:10] < state.dissolved:
                return state.code
    return country


def country_of_place_label(label: str, gaz: Optional[Gazetteer] = None) -> Optional[str]:
    """A source's structured place label ('el-salvador', 'usa', 'Paris') -> ISO alpha-2."""
    gaz = gaz or load_gazetteer()
    code = gaz.place_labels.get(label.strip().lower())
    if code:
        return code
    words = label.replace("-", " ").replace("_", " ").strip()
    if not words:
        return None
    try:
        return pycountry.countries.lookup(words).alpha_2
    except LookupError:
        pass
    key = name_key(words.title() if words.islower() or words.isupper() else words)
    entries = [e for e in gaz.names.get(key) if e.kind in ("country", "place") and e.country]
    return entries[0].country if entries else None


@dataclass
class CountryEvidence:
    """Why a country is tagged: structured label, dateline, headline, or body mentions."""

    code: str
    labelled: bool = False
    dateline: bool = False
    headline: bool = False
    body_mentions: int = 0
    first_body_token: int = -1


def country_evidence(mentions: Iterable[Mention], dateline_entry: Optional[Entry],
                     published_at: Optional[str], place_labels: Iterable[str],
                     gaz: Gazetteer) -> tuple[dict[str, CountryEvidence], list[dict]]:
    """Evidence per ISO code in order of first evidence, and the named places (countries excluded)."""
    mentions = list(mentions)
    label_codes = [c for c in (country_of_place_label(label, gaz) for label in place_labels) if c]
    named = {m.candidates[0].country for m in mentions
             if len({e.country for e in m.candidates}) == 1 and m.candidates[0].country}
    context = named | set(label_codes) | ({dateline_entry.country} if dateline_entry else set())
    evidence: dict[str, CountryEvidence] = {}
    places: dict[str, dict] = {}

    def note(entry: Entry, text: str) -> Optional[CountryEvidence]:
        if entry.kind == "place" and entry.place and entry.name not in places:
            places[entry.name] = {**entry.place, "text": text}
        if not entry.country:
            return None
        code = historic_code(entry.country, published_at, gaz)
        return evidence.setdefault(code, CountryEvidence(code))

    for code in label_codes:
        code = historic_code(code, published_at, gaz)
        evidence.setdefault(code, CountryEvidence(code)).labelled = True
    if dateline_entry is not None:
        ev = note(dateline_entry, dateline_entry.name)
        if ev:
            ev.dateline = True
    for mention in mentions:
        ev = note(choose(mention, context, published_at, gaz), mention.text)
        if ev is None:
            continue
        if mention.in_headline:
            ev.headline = True
        else:
            if ev.first_body_token < 0:
                ev.first_body_token = mention.start
            ev.body_mentions += 1
    return evidence, list(places.values())


def salient_countries(evidence: dict[str, CountryEvidence], gaz: Gazetteer) -> list[str]:
    """The countries a story is about, out of all it names (rules in places.json, `salience`).
    On Reuters-21578 a country named only once in the body is wrong four times in five."""
    strong = [e for e in evidence.values() if e.labelled or e.dateline or e.headline]
    most = max((e.body_mentions for e in evidence.values()), default=0)

    def about(e: CountryEvidence) -> bool:
        if e.labelled or e.dateline or e.headline:
            return True
        in_lead = 0 <= e.first_body_token < gaz.lead_words
        if in_lead and e.body_mentions >= gaz.min_body_mentions:
            return True
        return not strong and (in_lead or e.body_mentions == most)

    return [code for code, e in evidence.items() if about(e)]
