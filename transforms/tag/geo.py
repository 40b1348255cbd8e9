"""Countries and places: what the story is about, from where it was filed and what it names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from wirestream.transforms.tag.gazetteer import Entry, Gazetteer
from wirestream.transforms.tag.text import Memo, is_shouted

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


# A format's dateline field -> parse_dateline of it: fields repeat ("LONDON, March 3 -").
DATELINE_FIELDS: Memo[str, Optional[Dateline]] = Memo(parse_dateline, 1 << 14)


@dataclass
class Mention:
    """A name found in the text with everything it may refer to."""

    text: str
    start: int
    length: int
    candidates: list[Entry]
    in_headline: bool = False


# A smaller namesake in a country the story names wins over the best-known town only
# when it is at least this big relative to it (London, Ontario never beats London).
DATELINE_NAMESAKE_RATIO = 0.25


def resolve_dateline(dateline: Dateline, gaz: Gazetteer, countries_named: set[str]) -> Optional[Entry]:
    """The dateline's place. Every town in the gazetteer is a candidate; the region
    ("Ore.", "West Germany") decides first, then a country the story names, then size.
    A town missing from the gazetteer still gives its region's country."""
    key = gaz.text_keys[dateline.place]
    name = " ".join(key)
    candidates = [e for e in gaz.names.get(key) if e.kind in ("place", "country")]
    if dateline.region:
        region_key = gaz.text_keys[dateline.region]
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
    return not any(published_at[:10] < s.dissolved for s in gaz.states_of.get(entry.country, ()))


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
        for state in gaz.states_of.get(country, ()):
            if published_at[:10] < state.dissolved:
                return state.code
    return country


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
    label_codes = [c for c in map(gaz.label_codes.__getitem__, place_labels) if c]
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
        ev = evidence.get(code)
        if ev is None:
            ev = evidence[code] = CountryEvidence(code)
        return ev

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
