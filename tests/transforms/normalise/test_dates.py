import gzip
import json
from datetime import datetime, timezone

import pytest

from wirestream.schemas import Origin, Story
from wirestream.transforms.normalise import normalise_story
from wirestream.schemas.times import utc_iso
from wirestream.transforms.normalise.dates import normalise_time, parse_time, record_day_month_order

REFERENCE = datetime(2024, 6, 24, 9, 0, tzinfo=timezone.utc)  # a Monday


def parsed(raw, zone="UTC", reference=REFERENCE, language=None):
    result = parse_time(raw, zone, reference, language)
    return utc_iso(result.instant) if result else None


@pytest.mark.parametrize("raw, expected", [
    ("2024-06-23T18:00:00Z", "2024-06-23T18:00:00Z"),
    ("2024-06-23T18:00:00+02:00", "2024-06-23T16:00:00Z"),
    ("2024-06-23T18:00:00.123-0500", "2024-06-23T23:00:00Z"),
    ("20240623T180000Z", "2024-06-23T18:00:00Z"),
    ("Sun, 23 Jun 2024 18:00:00 GMT", "2024-06-23T18:00:00Z"),
    ("Sun, 23 Jun 2024 18:00:00 +0300", "2024-06-23T15:00:00Z"),
    ("23 Jun 24 18:00 EDT", "2024-06-23T22:00:00Z"),
    ("1719165600", "2024-06-23T18:00:00Z"),
    ("1719165600000", "2024-06-23T18:00:00Z"),
    ("1719165600.5", "2024-06-23T18:00:00Z"),
])
def test_machine_formats(raw, expected):
    assert parsed(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("23 Jun 2024 18:00 MSK", "2024-06-23T15:00:00Z"),
    ("Jun 23, 2024 6:00 PM IST", "2024-06-23T12:30:00Z"),  # India, not Israel
    ("23 Jun 2024 18:00 CET", "2024-06-23T17:00:00Z"),
    ("23 Jun 2024 18:00 CEST", "2024-06-23T16:00:00Z"),
    ("June 23, 2024 6:00 p.m. EST", "2024-06-23T23:00:00Z"),
    ("23 Jun 2024 18:00 JST", "2024-06-23T09:00:00Z"),
])
def test_zone_abbreviations(raw, expected):
    assert parsed(raw, language="en") == expected


def test_month_names_in_other_languages():
    assert parsed("24 juin 2024 à 14h05", language="fr") == "2024-06-24T14:05:00Z"
    assert parsed("23. Juni 2024, 18:00 Uhr", language="de") == "2024-06-23T18:00:00Z"


def test_date_in_another_language_than_the_story_still_parses():
    assert parsed("24 juin 2024 à 14h05", language="de") == "2024-06-24T14:05:00Z"


def test_naive_times_are_read_in_the_source_zone():
    assert parsed("2024-06-23 18:00") == "2024-06-23T18:00:00Z"
    assert parsed("2024-06-23 18:00", zone="Europe/Berlin") == "2024-06-23T16:00:00Z"
    assert parsed("2024-01-23 18:00", zone="Europe/Berlin") == "2024-01-23T17:00:00Z"  # no DST
    assert parsed(" 26-FEB-1987 15:01:01.79", zone="America/New_York") == "1987-02-26T20:01:01Z"
    # An explicit offset wins over the source zone.
    assert parsed("2024-06-23T18:00:00Z", zone="Europe/Berlin") == "2024-06-23T18:00:00Z"


@pytest.mark.parametrize("raw, expected", [
    ("2 hours ago", "2024-06-24T07:00:00Z"),
    ("vor 2 Stunden", "2024-06-24T07:00:00Z"),
    ("il y a 3 jours", "2024-06-21T09:00:00Z"),
    ("yesterday", "2024-06-23T09:00:00Z"),
])
def test_relative_times_resolve_against_the_record_reference_not_the_clock(raw, expected):
    assert parsed(raw) == expected
    # The same record replayed a year later gives the same answer.
    assert parsed(raw) == parsed(raw, reference=REFERENCE)


def test_relative_time_follows_its_own_reference():
    later = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert parsed("2 hours ago", reference=later) == "2025-01-01T10:00:00Z"


@pytest.mark.parametrize("raw, expected", [
    (" 5-MAR-1987 09:15:05.40", "1987-03-05T09:15:05Z"),  # leading space
    ("  3-MAR-1987 00:43:42.82", "1987-03-03T00:43:42Z"),
    ("3-MAR-1987  09:15:05.40", "1987-03-03T09:15:05Z"),  # double space
    ("27-MAR-1987 00:03:35.68&#5;&#5;&#5;F", "1987-03-27T00:03:35Z"),  # control-entity junk
    ("27-MAR-1987 14:12:01.00&#5;&#5;&#5;C G T M", "1987-03-27T14:12:01Z"),
    ("7-APR-1987 16:22:00.0", "1987-04-07T16:22:00Z"),  # one-digit fraction
    ("27-MAR-1987 00:03:35.68\x05\x05F", "1987-03-27T00:03:35Z"),  # raw control characters
])
def test_reuters_dates(raw, expected):
    assert parsed(raw) == expected


def test_reuters_impossible_hour_keeps_the_day_and_says_so():
    value, quality = normalise_time("published_at", "31-MAR-1987 605:12:19.12", "UTC", REFERENCE)
    assert value == "1987-03-31T00:00:00Z"
    assert quality == ["published_at: impossible time 605:12:19; day kept in '31-MAR-1987 605:12:19.12'"]


def test_reuters_annotated_guess_is_kept_and_flagged():
    raw = "9-APR-1987 00:00:00.00    # date added by S Finch as guesswork "
    value, quality = normalise_time("published_at", raw, "UTC", REFERENCE)
    assert value == "1987-04-09T00:00:00Z"
    assert "guesswork" in quality[0]


@pytest.mark.parametrize("raw, reason", [
    ("not a date at all", "unparseable"),
    ("2024-06-25T09:00:01Z", "more than a day after"),
    ("1899-12-31T23:59:59Z", "before 1900"),
])
def test_unreadable_or_implausible_times_are_null_with_a_reason(raw, reason):
    value, quality = normalise_time("published_at", raw, "UTC", REFERENCE)
    assert value is None
    assert len(quality) == 1 and quality[0].startswith("published_at: ") and reason in quality[0]


def test_up_to_a_day_ahead_is_accepted():
    assert normalise_time("published_at", "2024-06-25T09:00:00Z", "UTC", REFERENCE) == (
        "2024-06-25T09:00:00Z", [])


def test_date_only_is_midnight_and_flagged():
    assert normalise_time("updated_at", "2024-06-23", "UTC", REFERENCE) == (
        "2024-06-23T00:00:00Z", ["updated_at: date only in '2024-06-23'"])


def test_every_reuters_date_field_is_read(shared_data):
    path = shared_data / "reuters21578" / "reuters21578.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        raws = [json.loads(line)["date_raw"] for line in f]
    reference = datetime(2026, 1, 1, tzinfo=timezone.utc)
    values = [normalise_time("published_at", raw, "UTC", reference, "en") for raw in raws]
    assert len(values) == 21578
    assert all(value is not None for value, _ in values)
    assert min(v for v, _ in values) == "1987-02-26T15:01:01Z"
    assert max(v for v, _ in values).startswith("1987-10-20")
    assert sum(bool(q) for _, q in values) == 2  # the impossible hour and the annotated guess


def test_a_date_in_another_language_with_a_utc_offset_parses():
    # "UTC+01:00" was read as UTC followed by a second offset, so no parser took it.
    assert parsed("2 avril 1987 08:32 UTC+01:00", language="en") == "1987-04-02T07:32:00Z"
    assert parsed("2. März 1987 08:32 GMT+1", language="en") == "1987-03-02T07:32:00Z"
    assert parsed("2 марта 1987 08:32 UTC+03:00", language="en") == "1987-03-02T05:32:00Z"


@pytest.mark.parametrize("raw, expected", [
    ("10.06.2024 11:15 MSK", "2024-06-10T08:15:00Z"),
    ("10.06.2024", "2024-06-10T00:00:00Z"),
    ("03.02.1987 09:51", "1987-02-03T09:51:00Z"),
    ("2.3.1987 14h05 GMT+1", "1987-03-02T13:05:00Z"),
    ("10.06.24, 11:15 Uhr", "2024-06-10T11:15:00Z"),
])
def test_dotted_numeric_dates_are_day_first(raw, expected):
    for language in (None, "en", "de"):
        assert parsed(raw, language=language) == expected


@pytest.mark.parametrize("raw, expected", [
    ("13/02/1987 09:51", "1987-02-13T09:51:00Z"),  # 13 can only be the day
    ("02/13/1987 9:51 PM", "1987-02-13T21:51:00Z"),  # ... or only the month's neighbour
])
def test_slashed_dates_with_a_number_over_12_need_no_guess(raw, expected):
    assert normalise_time("published_at", raw, "UTC", REFERENCE) == (expected, [])


@pytest.mark.parametrize("raw, order, expected, reason", [
    ("03/02/1987 9:51 AM EST", None, "1987-03-02T14:51:00Z", "month first (US zone EST in the value)"),
    ("03/02/1987 09:51 CET", None, "1987-02-03T08:51:00Z", "day first (zone CET in the value)"),
    ("03/02/1987 09:51", dict(source_zone="America/New_York"), "1987-03-02T14:51:00Z",
     "month first (source zone America/New_York)"),
    ("03/02/1987 09:51", dict(source_zone="Europe/Paris"), "1987-02-03T08:51:00Z",
     "day first (source zone Europe/Paris)"),
    ("03/02/1987 09:51", dict(region="US", language="en"), "1987-03-02T09:51:00Z",
     "month first (declared region US)"),
    ("03/02/1987 09:51", dict(region="GB", language="en"), "1987-02-03T09:51:00Z",
     "day first (declared region GB)"),
    ("03/02/1987 09:51", dict(language="fr"), "1987-02-03T09:51:00Z",
     "day first (declared language fr)"),
    ("03/02/1987 09:51", None, "1987-02-03T09:51:00Z", "day first (no sign of a US source)"),
])
def test_ambiguous_slashed_dates_follow_the_record_and_say_so(raw, order, expected, reason):
    zone = (order or {}).get("source_zone") or "UTC"
    day_month_order = record_day_month_order(**order) if order else None
    value, quality = normalise_time("published_at", raw, zone, REFERENCE, "en", day_month_order)
    assert value == expected
    assert len(quality) == 1 and "day and month cannot be told apart" in quality[0]
    assert reason in quality[0]


def test_the_normaliser_reads_slashed_dates_by_the_records_own_signs():
    def story(language_raw):
        return Story(format="json", headline="Talks", body="Talks resumed.", language_raw=language_raw,
                     published_raw="03/02/1987 09:51",
                     origin=Origin(kind="file", ingested_at="2024-06-24T09:00:00Z"))
    us, french = normalise_story(story("en-US")), normalise_story(story("fr"))
    assert us.published_at == "1987-03-02T09:51:00Z"
    assert french.published_at == "1987-02-03T09:51:00Z"
    assert any("month first (declared region US)" in q for q in us.quality)
    assert any("day first (declared language fr)" in q for q in french.quality)
