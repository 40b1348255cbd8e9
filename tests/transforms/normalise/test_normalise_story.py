import pickle
from dataclasses import replace

import pytest

from wirestream.schemas import Origin, Story, validator
from wirestream.transforms.normalise import NormaliseSettings, normalise_story

MONDAY_INGEST = Origin(kind="file", ingested_at="2024-06-24T09:00:00Z", path="seed.txt", item=0)
GERMAN_BODY = ("Der Bundestag hat am Montag ein neues Gesetz beschlossen, das die Regeln für "
               "Mieten in großen Städten deutlich verschärft.")

LONG_GERMAN_BODY = " ".join([GERMAN_BODY] + [
    "Nach dem neuen Gesetz dürfen Vermieter die Miete bei einer neuen Vermietung nur noch um "
    "höchstens zehn Prozent über die ortsübliche Vergleichsmiete anheben.",
    "Die Opposition kritisierte den Entwurf als zu schwach, während Verbände der Eigentümer "
    "vor einem Rückgang der Investitionen in neue Wohnungen warnten.",
    "Die Regierung will die Wirkung der Regeln in drei Jahren prüfen lassen und hofft, dass "
    "Familien mit kleinen und mittleren Einkommen in den Städten bleiben können."])


def seed_story(shared_data) -> Story:
    lines = (shared_data / "seed" / "000_bf88e37bba94a288.txt").read_text(encoding="utf-8").split("\n\n")
    return Story(format="text", section=lines[0], headline=lines[1], body="\n\n".join(lines[2:-1]),
                 related_headlines=lines[-1].strip().split("\n"), origin=MONDAY_INGEST)


def test_seed_story_dates_come_from_the_ingest_time(shared_data):
    record = normalise_story(seed_story(shared_data))
    assert record.published_at == "2024-06-24T09:00:00Z"
    assert record.quality == ["published_at: not given by the source; ingest time used"]
    assert [(m["text"], m["date"]) for m in record.dates_mentioned] == [
        ("on Monday", "2024-06-24"), ("on Sunday", "2024-06-23"), ("Earlier this month", "2024-06-01")]
    assert record.language == "en" and record.language_confidence > 0.99
    assert record.headline.startswith("Putin's Peace Proposal")  # typographic apostrophe normalised
    assert len(record.related_headlines) == 2
    assert list(validator("event_record").iter_errors(record.to_dict())) == []


def test_kafka_record_time_is_the_reference():
    origin = Origin(kind="kafka", ingested_at="2025-06-01T00:00:00Z", topic="wire", partition=0,
                    offset=7, timestamp="2024-06-24T09:00:00Z")
    story = Story(format="json", headline="Talks", body="Talks ended on Sunday, officials said.",
                  origin=origin, published_raw="2 hours ago")
    record = normalise_story(story)
    assert record.published_at == "2024-06-24T07:00:00Z"
    assert record.dates_mentioned[0]["date"] == "2024-06-23"


def test_unparseable_date_is_a_quality_note_not_a_failure():
    story = Story(format="json", headline="Talks resume",
                  body="Talks resumed in Geneva on Sunday, officials said.",
                  origin=MONDAY_INGEST, published_raw="sometime soon")
    record = normalise_story(story)
    assert record.published_at is None and record.published_raw == "sometime soon"
    assert record.quality == ["published_at: unparseable 'sometime soon'",
                              "dates_mentioned: not resolved, the publication time is unknown"]
    assert record.dates_mentioned == []


def test_source_zone_applies_to_naive_times():
    story = Story(format="reuters-sgml", headline="COCOA", body="Showers continued in Bahia.",
                  origin=MONDAY_INGEST, source="Reuters", published_raw=" 26-FEB-1987 15:01:01.79")
    settings = NormaliseSettings(source_timezones={"Reuters": "America/New_York"})
    assert normalise_story(story).published_at == "1987-02-26T15:01:01Z"
    assert normalise_story(story, settings).published_at == "1987-02-26T20:01:01Z"


def test_declared_language_and_disagreement():
    story = Story(format="ninjs", headline="Neues Mietrecht", body=GERMAN_BODY, origin=MONDAY_INGEST,
                  published_raw="2024-06-24T08:00:00+02:00", language_raw="de-DE")
    record = normalise_story(story)
    assert (record.language, record.language_declared, record.language_region) == ("de", "de", "DE")
    assert record.quality == []

    # Too few letters to overrule the source: the declaration stands, with a note.
    short = normalise_story(replace(story, language_raw="en"))
    assert short.language == "en" and short.language_declared == "en"
    assert short.quality[0].startswith("language: declared 'en' but the text reads as 'de'")
    assert short.quality[0].endswith("declared language kept")

    mislabelled = normalise_story(replace(story, language_raw="en", body=LONG_GERMAN_BODY))
    assert mislabelled.language == "de" and mislabelled.language_declared == "en"
    assert mislabelled.quality[0].endswith("detected language used")

    unknown_tag = normalise_story(replace(story, language_raw="qq-QQ"))
    assert unknown_tag.language_declared is None and unknown_tag.language == "de"
    assert unknown_tag.quality == ["language_declared: unrecognised tag 'qq-QQ'"]


def test_boilerplate_and_ids():
    story = Story(format="reuters-sgml", headline="BAHIA COCOA REVIEW",
                  body="Showers continued throughout the week.\n\n Reuter\n", origin=MONDAY_INGEST,
                  source="Reuters", published_raw="26-FEB-1987 15:01:01.79")
    record = normalise_story(story)
    assert record.body == "Showers continued throughout the week."
    assert record.story_id.startswith("sha256:")
    # Same text from another file and time: same ids (replays upsert).
    again = normalise_story(replace(story, body="Showers continued throughout the week.\nReuter",
                                    origin=replace(MONDAY_INGEST, path="other.sgm",
                                                   ingested_at="2030-01-01T00:00:00Z")))
    assert (again.event_id, again.story_id) == (record.event_id, record.story_id)
    assert record.language == "en"  # headline in capitals is still read


def test_settings_and_stage_function_pickle():
    settings = NormaliseSettings(default_timezone="Europe/Oslo", source_timezones={"NTB": "Europe/Oslo"})
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert pickle.loads(pickle.dumps(normalise_story)) is normalise_story


@pytest.mark.parametrize("ingest", ["2024-06-24T09:00:00Z", "2031-01-01T00:00:00Z"])
def test_absolute_dates_do_not_depend_on_ingest_time(ingest):
    story = Story(format="ninjs", headline="Neues Mietrecht", body=GERMAN_BODY,
                  origin=replace(MONDAY_INGEST, ingested_at=ingest),
                  published_raw="2019-05-10T16:02:28+02:00")
    assert normalise_story(story).published_at == "2019-05-10T14:02:28Z"
