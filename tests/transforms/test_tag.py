"""Tag stage: countries, places, people, organisations, topics, event types."""

from __future__ import annotations

import gzip
import json

import jsonschema
import pytest

from wirestream.schemas import EventRecord, Origin, Subject
from wirestream.transforms.tag import country_of_place_label, dateline_and_body, tag_record

SCHEMA_DIR = __import__("pathlib").Path(__file__).resolve().parents[2] / "schemas"


def record(headline: str, body: str, published_at: str = "2024-06-24T10:00:00Z",
           subjects: list[Subject] | None = None, place_labels: list[str] | None = None) -> EventRecord:
    return EventRecord(
        event_id="e", story_id="s", version=None, source=None, headline=headline, body=body, url=None,
        section=None, related_headlines=[], published_at=published_at, published_raw=None, updated_at=None,
        language="en", language_confidence=1.0, language_declared=None, dates_mentioned=[],
        origin=Origin(kind="file", ingested_at=published_at), format="text",
        subjects=subjects or [], place_labels=place_labels or [])


def tags_schema() -> dict:
    return json.loads((SCHEMA_DIR / "event_record.v1.schema.json").read_text())["properties"]["tags"]


@pytest.fixture(scope="module")
def seed_tags(request) -> dict:
    data = request.getfixturevalue("shared_data")
    text = (data / "seed" / "000_bf88e37bba94a288.txt").read_text(encoding="utf-8")
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    section, headline, *paragraphs = blocks
    related = paragraphs.pop().split("\n")  # the page's two trailing related headlines
    rec = record(headline, "\n\n".join(paragraphs))
    rec.section, rec.related_headlines = section, related
    return tag_record(rec).tags


def test_seed_story_countries_people_and_organisations(seed_tags):
    assert {"UA", "RU"} <= set(seed_tags["countries"])
    assert "US" not in seed_tags["countries"]  # "US-made" once is not what the story is about
    assert seed_tags["people"] == ["Vladimir Putin", "Dmitry Peskov", "Volodymyr Zelensky"]
    assert seed_tags["organisations"] == ["Kremlin"]
    jsonschema.validate(seed_tags, tags_schema())


def test_seed_story_places_keep_the_spelling_and_note_disputes(seed_tags):
    places = {p["name"]: p for p in seed_tags["places"]}
    assert {"Kyiv", "Sevastopol", "Crimea", "Donbas", "Kherson", "Zaporizhzhia"} <= set(places)
    assert places["Kyiv"]["text"] == "Kiev" and places["Donbas"]["text"] == "Donbass"
    assert places["Zaporizhzhia"]["text"] == "Zaporozhye"
    assert places["Sevastopol"]["country"] == "UA" and places["Sevastopol"]["disputed"] is True
    assert places["Crimea"]["disputed"] is True and "Russia" in places["Crimea"]["note"]
    assert "disputed" not in places["Kyiv"]
    assert all(isinstance(p["latitude"], float) for p in places.values())


def test_seed_story_topics_and_event_types(seed_tags):
    assert {t["code"] for t in seed_tags["topics"]} >= {"medtop:16000000", "medtop:11000000"}
    events = {e["type"]: e["evidence"] for e in seed_tags["event_types"]}
    assert events["make_statement"] == "told reporters"
    assert events["assault_or_fight"] == "attack"
    assert {"reject", "sanction", "consult_or_negotiate"} <= set(events)
    assert "mass_violence" not in events and "threaten" not in events  # "not an ultimatum"


@pytest.mark.parametrize("spelling", ["Kyiv", "Kiev"])
def test_variant_spellings_are_one_place(spelling):
    tags = tag_record(record(f"Explosions heard in {spelling}", f"Air raid sirens sounded in {spelling}.")).tags
    assert tags["countries"] == ["UA"]
    assert [(p["name"], p["text"]) for p in tags["places"]] == [("Kyiv", spelling)]


def test_ambiguous_dateline_town_is_resolved_by_the_story():
    tags = tag_record(record("BAHIA COCOA REVIEW", "    SALVADOR, Feb 26 - Showers continued in the Bahia cocoa "
                                                   "zone, the Brazilian Cocoa Trade Commission said.",
                             published_at="1987-02-26T00:00:00Z")).tags
    assert tags["countries"] == ["BR"]
    assert tags["places"][0]["name"] == "Salvador" and tags["places"][0]["country"] == "BR"


def test_dateline_region_and_best_known_namesake():
    portland = tag_record(record("RED LION INNS FILES OFFERING", "    PORTLAND, Ore., March 2 - Red Lion Inns "
                                                                  "said it filed an offering.")).tags
    assert portland["countries"] == ["US"]
    london = tag_record(record("CANADIAN BANK ISSUES BOND", "    LONDON, March 12 - A Canadian bank is issuing "
                                                             "a bond through Canada's largest dealer.")).tags
    assert london["countries"][0] == "GB"


@pytest.mark.parametrize("field, body, expected", [
    # the field alone is the dateline; the body is left as it is
    ("SALVADOR, Feb 26 -", "Showers continued in the Bahia cocoa zone.",
     ("SALVADOR", "Showers continued in the Bahia cocoa zone.")),
    # Reuters-21578 cuts the field at the first dash: its tail is story text
    ("LONDON, March 16 - State-owned <BAA PLC> -", "formerly the British Airports Authority - is sold.",
     ("LONDON", "State-owned <BAA PLC> - formerly the British Airports Authority - is sold.")),
    # a field that is no dateline still names places: its words are read with the body
    ("Caracas, feb 26 -", "venezuela is seeking talks.", (None, "Caracas, feb 26 - venezuela is seeking talks.")),
    # no field: the body's own opening dateline
    (None, "    MOSCOW, March 3 - The harvest was poor.", ("MOSCOW", "The harvest was poor.")),
    (None, "The plan - said officials - was poor.", (None, "The plan - said officials - was poor.")),
])
def test_the_dateline_comes_from_the_field_when_the_format_gives_one(field, body, expected):
    rec = record("HEADLINE", body)
    rec.dateline = field
    dateline, text = dateline_and_body(rec)
    assert (dateline.place if dateline else None, text) == expected


def test_historic_states_before_and_after_dissolution():
    body = "    MOSCOW, March 3 - The grain harvest was poor, officials said."
    assert tag_record(record("GRAIN HARVEST", body, published_at="1987-03-03T00:00:00Z")).tags["countries"] == ["SU"]
    assert tag_record(record("GRAIN HARVEST", body, published_at="2024-03-03T00:00:00Z")).tags["countries"] == ["RU"]
    georgia = tag_record(record("Peach crop falls", "Georgia farmers in the United States lost the peach crop.",
                                published_at="1987-05-01T00:00:00Z")).tags
    assert georgia["countries"] == ["US"]


def test_a_country_named_once_late_in_the_body_is_not_what_the_story_is_about():
    body = ("    TOKYO, March 3 - Japan's trade surplus rose in February, the Finance Ministry said. "
            + "Exports of cars and electronics grew strongly over the month. " * 6
            + "Some of the goods were shipped to Brazil.")
    assert tag_record(record("JAPAN TRADE SURPLUS RISES", body)).tags["countries"] == ["JP"]


def test_currency_is_not_a_country():
    tags = tag_record(record("GMAC UNIT ISSUES CANADIAN DLR BOND", "    LONDON, March 2 - The unit is issuing "
                                                                    "a 75 mln Canadian dlr bond.")).tags
    assert tags["countries"] == ["GB"]


def test_people_are_normalised_within_a_story():
    tags = tag_record(record("Energy policy", "Energy Secretary John Herrington said output would fall. "
                                              "Herrington said prices were stable. President Putin agreed, "
                                              "and Putin's aide Dmitry Peskov said so too.")).tags
    assert tags["people"] == ["John Herrington", "Vladimir Putin", "Dmitry Peskov"]


def test_organisations_from_gazetteer_and_designators():
    tags = tag_record(record("Oil venture", "Standard Oil Co and BP North America Inc said they plan a venture. "
                                            "Standard Oil owns 55 pct. The Bank of Japan and the Fed said nothing.")).tags
    assert tags["organisations"] == ["Standard Oil", "BP North America", "Bank of Japan", "Federal Reserve"]


def test_structured_subjects_give_top_level_media_topics():
    subjects = [Subject("medtop:04000000", "economy"), Subject("13010000", None),
                Subject("reuters-topic:cocoa", None), Subject("medtop:20000568", "unknown child")]
    topics = tag_record(record("Cocoa", "Cocoa prices rose.", subjects=subjects)).tags["topics"]
    assert [(t["code"], t["source"]) for t in topics] == [("medtop:04000000", "subject"),
                                                          ("medtop:13000000", "subject")]
    assert topics[0]["label"] == "economy, business and finance"


def test_keyword_topics_when_the_source_gives_none():
    topics = tag_record(record("Strike hits ports", "Dock workers began a strike over wages; the union said "
                                                    "unemployment had doubled.")).tags["topics"]
    assert topics[0]["code"] == "medtop:09000000" and topics[0]["source"] == "keywords"


def test_structured_place_labels_are_used_in_production():
    tags = tag_record(record("COFFEE EXPORTS", "Exports were steady.", place_labels=["el-salvador", "usa"])).tags
    assert tags["countries"] == ["SV", "US"]


def test_every_reuters_place_label_maps_to_a_code(shared_data):
    labels = (shared_data / "reuters21578" / "original" / "all-places-strings.lc.txt").read_text().split()
    assert len(labels) == 175
    codes = {label: country_of_place_label(label) for label in labels}
    assert [label for label, code in codes.items() if not code] == []
    assert (codes["el-salvador"], codes["ussr"], codes["west-germany"], codes["uk"]) == ("SV", "SU", "DE", "GB")


def test_countries_from_text_agree_with_reuters_places(shared_data):
    """First 2,000 stories, text only (PLACES withheld): the figures the README reports, on a sample."""
    tp = fp = fn = 0
    with gzip.open(shared_data / "reuters21578" / "reuters21578.jsonl.gz", "rt", encoding="utf-8") as f:
        stories = [json.loads(line) for _, line in zip(range(2000), f)]
    for story in stories:
        rec = record(story["title"] or "", (story["dateline"] or "") + (story["body"] or ""),
                     published_at="1987-03-01T00:00:00Z")
        tags = tag_record(rec).tags
        assert set(tags) == {"countries", "places", "people", "organisations", "topics", "event_types"}
        if story["places"]:
            predicted, expected = set(tags["countries"]), {country_of_place_label(p) for p in story["places"]}
            tp, fp, fn = tp + len(predicted & expected), fp + len(predicted - expected), fn + len(expected - predicted)
    assert tp / (tp + fp) >= 0.9 and tp / (tp + fn) >= 0.85


def test_the_stage_pickles_without_its_gazetteers():
    from apache_beam.internal import pickler

    from wirestream.transforms.stage import StageDoFn
    tag_record(record("x", "Kyiv"))  # gazetteers loaded in this process must not ride along
    assert len(pickler.dumps(StageDoFn("tag", tag_record))) < 5000


def test_edited_data_files_in_a_data_dir_extend_the_gazetteers(tmp_path):
    import functools

    from apache_beam.internal import pickler

    from wirestream.transforms.tag.gazetteer import read_data
    people = read_data("people.json")
    people["people"].append({"name": "Jane Q. Example", "aliases": ["Example"], "country": "NZ"})
    (tmp_path / "people.json").write_text(json.dumps(people), encoding="utf-8")
    text = "Example said the harbour would reopen."
    assert tag_record(record("Harbour", text)).tags["people"] == []
    tagger = functools.partial(tag_record, data_dir=str(tmp_path))
    tags = tagger(record("Harbour", text)).tags
    assert tags["people"] == ["Jane Q. Example"] and tags["countries"] == ["NZ"]
    assert len(pickler.dumps(tagger)) < 5000


def _phrase_index(*phrases: str):
    from wirestream.transforms.tag.text import PhraseIndex
    index = PhraseIndex()
    for phrase in phrases:
        index.add(tuple(phrase.split()), phrase)
    return index


def test_phrase_scan_takes_leftmost_longest_whole_token_matches():
    index = _phrase_index("New York", "New York City", "York", "City Hall", "Hall")
    tokens = ["Mayor", "of", "New", "York", "City", "Hall", "in", "Yorkshire", None, "York"]
    assert list(index.scan(tokens)) == [(2, 3, ["New York City"]), (5, 1, ["Hall"]), (9, 1, ["York"])]
    # A clause break ends a phrase.
    assert list(index.scan(["New", None, "York"])) == [(2, 1, ["York"])]


def test_phrase_scan_finds_a_short_match_after_a_longer_one_fails():
    index = _phrase_index("c c a b", "a", "a c b", "c a b a", "c b c")
    tokens = "d d b c c a d a b d c".split()
    assert [(start, values) for start, _, values in index.scan(tokens)] == [(5, ["a"]), (7, ["a"])]


def test_tokens_drop_dots_and_possessives_and_break_at_sentence_ends():
    from wirestream.transforms.tag.text import tokenize
    assert tokenize("Russia's army left Kiev. Mr. Putin met U.S. envoys - again.") == [
        "Russia", "army", "left", "Kiev", None, "Mr", "Putin", "met", "US", "envoys", None, "again", None, None]


@pytest.mark.parametrize("text", [
    "U.S. and O'Neill's AT&T unit, (Reuters) - said: 1.5 pct.\n \n Kiev.", "a - - b\n\n- c -\n\nd",
    "x\x1c-\x1dy", "Co.uk 2nd Mr. J. Smith's", "\"Quoted\" [and] ;;!?"])
def test_the_ascii_scan_finds_what_the_pattern_finds(text):
    from wirestream.transforms.tag.text import _WORD_OR_BREAK, _items
    assert text.isascii() and _items(text) == _WORD_OR_BREAK.findall(text)


def test_the_ascii_scan_finds_what_the_pattern_finds_in_random_text_and_the_wire(shared_data):
    import random

    from wirestream.transforms.tag.text import _WORD_OR_BREAK, _items
    rng = random.Random(11)
    # Every character class the pattern names, and some it does not (digits, "_", controls).
    alphabet = "aZq.'&,;()\"-\n \t\r\x0b\x0c\x1c\x1f9_\x00~"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert _items(text) == _WORD_OR_BREAK.findall(text), repr(text)
    for text in map(chr, range(128)):
        assert _items(text) == _WORD_OR_BREAK.findall(text), repr(text)
    with gzip.open(shared_data / "reuters21578" / "reuters21578.jsonl.gz", "rt", encoding="utf-8") as f:
        bodies = [json.loads(line)["body"] or "" for _, line in zip(range(3000), f)]
    assert sum(map(str.isascii, bodies)) > 2900
    assert all(_items(body) == _WORD_OR_BREAK.findall(body) for body in bodies)


@pytest.mark.parametrize("text, shouted", [("BRAZIL COCOA OUTPUT FALLS", True), ("Brazil cocoa output", False),
                                           ("KYIV ПОД ОБСТРЕЛОМ", True), ("Kyiv под обстрелом", False), ("US", False)])
def test_shouted_text_is_judged_alike_in_ascii_and_not(text, shouted):
    from wirestream.transforms.tag.text import is_shouted
    assert is_shouted(text) is shouted


def test_a_memo_computes_once_and_stays_bounded():
    from wirestream.transforms.tag.text import Memo
    calls = []
    memo = Memo(lambda k: calls.append(k) or k.upper(), size=2)
    assert [memo["a"], memo["a"], memo["b"]] == ["A", "A", "B"] and calls == ["a", "b"]
    assert memo["c"] == "C" and len(memo) <= 2


def _gazetteer_state(gaz) -> dict:
    from wirestream.transforms.tag.text import PhraseIndex
    return {k: vars(v) if isinstance(v, PhraseIndex) else v for k, v in gaz.__getstate__().items()}


def test_a_cached_gazetteer_equals_a_fresh_build(tmp_path, monkeypatch):
    from wirestream.transforms.tag import gazetteer
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = gazetteer.load_gazetteer.__wrapped__()
    assert len(list((tmp_path / "wirestream").glob("gazetteer-*.pickle"))) == 1
    monkeypatch.setattr(gazetteer, "build_gazetteer", lambda data: pytest.fail("built again"))
    cached = gazetteer.load_gazetteer.__wrapped__()
    assert cached is not built and _gazetteer_state(cached) == _gazetteer_state(built)
    assert cached.names.scan(["Explosions", "in", "Kyiv"]) == built.names.scan(["Explosions", "in", "Kyiv"]) != []


def test_a_changed_data_file_rebuilds_the_gazetteer(tmp_path, monkeypatch):
    from wirestream.transforms.tag.gazetteer import load_gazetteer, read_data
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    people = read_data("people.json")
    (data / "people.json").write_text(json.dumps(people), encoding="utf-8")
    before = load_gazetteer.__wrapped__(str(data))
    people["people"].append({"name": "Jane Q. Example", "aliases": [], "country": "NZ"})
    (data / "people.json").write_text(json.dumps(people), encoding="utf-8")
    after = load_gazetteer.__wrapped__(str(data))
    assert before.names.get(("Jane", "Q", "Example")) == [] and after.names.get(("Jane", "Q", "Example"))
    assert len(list((tmp_path / "cache" / "wirestream").glob("gazetteer-*.pickle"))) == 2


def test_an_unreadable_cache_is_built_again(tmp_path, monkeypatch):
    import pickle

    from wirestream.transforms.tag.gazetteer import Gazetteer, load_gazetteer
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    load_gazetteer.__wrapped__()
    (path,) = (tmp_path / "wirestream").glob("gazetteer-*.pickle")
    path.write_bytes(path.read_bytes()[:1000])  # a truncated file
    assert load_gazetteer.__wrapped__().names.get(("Kyiv",))
    assert isinstance(pickle.loads(path.read_bytes()), Gazetteer)  # written whole again


def test_segment_starts_are_where_each_kind_of_phrase_may_start():
    from wirestream.transforms.tag import _DESIGNATOR, _EVENT, _KEYWORD, _NAME, _TITLE, _Segment, _phrase_kinds
    from wirestream.transforms.tag.gazetteer import load_gazetteer
    kinds_of = _phrase_kinds(None)
    text = ("Treasury Secretary James Baker said the Bank of Japan cut interest rates, and Standard Oil Co "
            "workers went on strike in Kiev. OPEC oil output fell after the earthquake.")
    segment = _Segment(text, False, load_gazetteer(), kinds_of)
    for kind in (_NAME, _TITLE, _DESIGNATOR, _KEYWORD, _EVENT):
        expected = [i for i, token in enumerate(segment.tokens) if kinds_of[token] & kind]
        assert expected and segment.starts(kind) == expected
