import random

from tests.transforms.dedup.stories import BURST_SETTINGS, OTHER_STORY, STORY, templated_burst, story
from wirestream.transforms.dedup import DedupSettings
from wirestream.transforms.dedup.sketch import band_keys, sketch_record
from wirestream.transforms.dedup.streaming_state import CLOCK_QUORUM, BandShardIndex, RootRegistry


def _others(published, settings, count=CLOCK_QUORUM):
    """Unrelated stories published at one time: enough of them move a key's clock there."""
    return [sketch_record(story(f"other{published}{i}", OTHER_STORY, published, source=f"o{i}"), settings)
            for i in range(count)]


def test_band_shard_index_expires_by_event_time_alone():
    settings = DedupSettings(window_days=7, allowed_lateness_days=1)
    index = BandShardIndex()
    old = sketch_record(story("o", STORY, "1987-03-01T00:00:00Z"), settings)
    bucket = band_keys(old, settings)[0]
    index.probe(bucket, old, settings)
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-05T00:00:00Z", source="b"), settings)
    assert [r.earlier_uid for r in index.probe(bucket, copy_, settings).found] == [old.uid]
    for later in _others("1987-03-09T01:00:00Z", settings):  # 8 days and 1 hour after the first
        index.probe(bucket + 1, later, settings)
    assert len(index) == 1 + CLOCK_QUORUM and old.uid not in {s.uid for b in index.buckets.values() for s in b}


def test_one_story_far_ahead_expires_nothing_and_makes_nobody_late():
    settings = DedupSettings(allowed_lateness_days=1)
    index = BandShardIndex()
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    bucket = band_keys(copy_, settings)[0]
    index.probe(bucket, copy_, settings)
    for other in _others("1987-03-02T12:00:00Z", settings, CLOCK_QUORUM - 1):
        index.probe(bucket + 1, other, settings)
    # A replayed story whose date fell back to the ingest time, 37 years on.
    ahead = sketch_record(story("now", OTHER_STORY, "2024-01-01T00:00:00Z", source="replay"), settings)
    assert index.probe(bucket + 2, ahead, settings).released == []
    original = sketch_record(story("r1", STORY), settings)
    answer = index.probe(bucket, original, settings)
    assert answer.too_late == [] and [r.later_uid for r in answer.corrections] == [copy_.uid]
    assert copy_.uid in {s.uid for s in index.buckets[bucket]}


def test_band_shard_index_sends_a_late_earlier_story_to_the_copy_decided_without_it():
    settings = DedupSettings()
    index = BandShardIndex()
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    original = sketch_record(story("r1", STORY), settings)
    bucket = band_keys(original, settings)[0]
    index.probe(bucket, copy_, settings)
    answer = index.probe(bucket, original, settings)
    assert answer.found == [] and answer.too_late == []
    assert [(r.earlier_uid, r.later_uid) for r in answer.corrections] == [(original.uid, copy_.uid)]


def test_a_story_beyond_the_lateness_corrects_nothing_and_is_counted():
    settings = DedupSettings(allowed_lateness_days=1)
    index = BandShardIndex()
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-04T12:00:00Z", source="b"), settings)
    original = sketch_record(story("r1", STORY, "1987-03-02T10:00:00Z"), settings)  # 2 days behind
    bucket = band_keys(original, settings)[0]
    index.probe(bucket, copy_, settings)
    for other in _others("1987-03-04T12:00:00Z", settings, CLOCK_QUORUM - 1):
        index.probe(bucket + 1, other, settings)
    answer = index.probe(bucket, original, settings)
    assert answer.corrections == [] and answer.too_late == [copy_.uid]


def test_band_shard_index_releases_a_story_once_the_lateness_has_passed():
    settings = DedupSettings(allowed_lateness_days=1)
    index = BandShardIndex()
    first = sketch_record(story("a", STORY, "1987-03-02T10:00:00Z"), settings)
    assert index.probe(1, first, settings).released == []
    for day_later in _others("1987-03-03T09:00:00Z", settings):
        assert index.probe(2, day_later, settings).released == []  # 23 hours: still held
    more = _others("1987-03-03T11:00:00Z", settings)
    released = [uid for other in more for uid in index.probe(3, other, settings).released]
    assert released == [first.uid]


def test_root_registry_answers_askers_before_and_after_registration_and_again_on_a_flip():
    settings = DedupSettings()
    registry = RootRegistry()
    assert registry.ask("early", "p", 0, settings) is None
    assert registry.register("p", True, 0, 0, settings) == [("early", ("p", True, 0))]
    assert registry.ask("late", "p", 0, settings) == ("late", ("p", True, 0))
    assert registry.register("p", True, 0, 1, settings) == []  # more relations, same flag: nobody told
    flipped = registry.register("p", False, 0, 2, settings)
    assert sorted(flipped) == [("early", ("p", False, 2)), ("late", ("p", False, 2))]
    assert registry.register("p", True, 0, 1, settings) == []  # an overtaken older flag is ignored
    assert registry.roots["p"][:1] == (False,)


def test_root_registry_keeps_a_question_about_a_story_not_registered_yet_through_a_sweep():
    settings = DedupSettings(window_days=7, allowed_lateness_days=1)
    registry = RootRegistry()
    assert registry.register("old", True, 0, 0, settings) == []
    assert registry.ask("asker", "pending", 9 * 86_400, settings) is None
    for i in range(CLOCK_QUORUM):  # 9 days on: a sweep forgets "old"
        registry.register(f"other{i}", True, 9 * 86_400, 0, settings)
    assert "old" not in registry.roots
    assert registry.register("pending", False, 9 * 86_400, 1, settings) == [("asker", ("pending", False, 1))]
    # A question about a story forgotten already is answered at once, not left waiting.
    assert registry.ask("asker", "old", 0, settings) == ("asker", ("old", True, 0))


def test_band_shard_index_applies_the_bucket_cap_in_any_arrival_order():
    records = templated_burst(40)
    sketches = [sketch_record(r, BURST_SETTINGS) for r in records]
    bucket = band_keys(sketches[0], BURST_SETTINGS)[0]
    for order in (sketches, sketches[::-1], random.Random(4).sample(sketches, len(sketches))):
        index = BandShardIndex()
        relations, made, dropped = set(), 0, 0
        for sketch in order:
            answer = index.probe(bucket, sketch, BURST_SETTINGS)
            made += len(answer.found) + len(answer.corrections)
            relations.update((r.earlier_uid, r.later_uid) for r in answer.found + answer.corrections)
            dropped += answer.dropped
        # Every story met the first one, whatever came first.
        assert {(sketches[0].uid, s.uid) for s in sketches[1:]} <= relations
        if order is sketches:  # in publication order each story meets at most 4 + 4 earlier ones
            assert made <= 40 * 8 and dropped == sum(max(0, i - 8) for i in range(40))
