from datetime import datetime, timedelta, timezone

import pytest

from wirestream.schemas.times import parse_utc_iso, utc_iso, utc_iso_ms, utc_iso_of_epoch


def test_an_instant_in_any_zone_is_written_in_utc_to_the_second():
    paris = timezone(timedelta(hours=2))
    assert utc_iso(datetime(2024, 6, 24, 12, 30, 15, 999_999, tzinfo=paris)) == "2024-06-24T10:30:15Z"


@pytest.mark.parametrize("epoch_ms, expected", [
    (0, "1970-01-01T00:00:00.000Z"),
    (1_719_224_999_999, "2024-06-24T10:29:59.999Z"),  # no float rounding into the next second
    (1_719_225_000_001, "2024-06-24T10:30:00.001Z"),
])
def test_kafka_timestamps_keep_their_milliseconds_exactly(epoch_ms, expected):
    assert utc_iso_ms(epoch_ms) == expected
    assert utc_iso_of_epoch(epoch_ms // 1000) == expected[:19] + "Z"


def test_our_timestamps_read_back_as_aware_utc_instants():
    assert parse_utc_iso("2024-06-24T10:30:15Z") == datetime(2024, 6, 24, 10, 30, 15, tzinfo=timezone.utc)
    assert parse_utc_iso("2024-06-24T10:30:15") == datetime(2024, 6, 24, 10, 30, 15, tzinfo=timezone.utc)
    assert parse_utc_iso(utc_iso_ms(1_719_225_000_001)).microsecond == 1000


def test_utc_iso_writes_what_strftime_writes():
    import random
    rng = random.Random(3)
    for _ in range(20_000):
        zone = timezone(timedelta(minutes=rng.randint(-1439, 1439)))
        instant = datetime(rng.randint(2, 9998), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                           rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999_999), tzinfo=zone)
        assert utc_iso(instant) == instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert utc_iso(datetime(987, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "987-01-02T03:04:05Z"
