import random
from dataclasses import replace

import numpy as np
import pytest

from tests.transforms.dedup.stories import (BURST_SETTINGS, OTHER_STORY, STORY, mixed_records,
                                            templated_burst, story)
from wirestream.transforms.dedup import DedupSettings, cluster_records
from wirestream.transforms.dedup.buckets import BucketPairs, candidate_pairs, compared_members
from wirestream.transforms.dedup.sketch import band_entries, sketch_record


def test_headline_only_briefs_are_compared_by_headline():
    # Reuters sends ~1,800 title-only briefs: sketching their empty bodies put
    # them all in one bucket of every band (1.6M pairs compared 32 times).
    words = (STORY + " " + OTHER_STORY).split()
    briefs = [story(f"b{i}", "", f"1987-03-{2 + i % 5:02d}T10:00:00Z",
                    " ".join(words[6 * i:6 * i + 6]).upper(), item=i) for i in range(len(words) // 6)]
    resent = story("b0-again", "", "1987-03-02T10:05:00Z", briefs[0].headline, source="desk")
    sketches = [sketch_record(r, DedupSettings()) for r in briefs + [resent]]
    pairs = set(candidate_pairs((packed for _, packed in band_entries(sketches, DedupSettings())),
                                DedupSettings()).pairs)
    assert tuple(sorted((sketches[0].uid, sketches[-1].uid))) in pairs
    assert len(pairs) < 0.1 * len(sketches) * (len(sketches) - 1) / 2  # was every pair
    out = {r.story_id: r for r in cluster_records(briefs + [resent])}
    assert out["b0-again"].duplicate_of == out["b0"].event_id
    assert sum(r.is_duplicate for r in out.values()) == 1


def _pairs_in_batches(sketches, settings, batch, partitions):
    """Candidate pairs found as the Beam batch path finds them: band entries packed
    per batch of stories, grouped by partition, arriving in any order."""
    by_partition = {}
    for i in range(0, len(sketches), batch):
        for partition, packed in band_entries(sketches[i:i + batch], settings, partitions):
            by_partition.setdefault(partition, []).append(packed)
    pairs = set()
    for group in by_partition.values():
        random.Random(batch).shuffle(group)
        pairs.update(candidate_pairs(group, settings).pairs)
    return pairs


def test_candidate_pairs_do_not_depend_on_batches_or_partitions():
    settings = DedupSettings()
    records = mixed_records()
    sketches = [sketch_record(r, settings) for r in records]
    uid = {(r.story_id, r.version): s.uid for r, s in zip(records, sketches)}
    expected = set(candidate_pairs((p for _, p in band_entries(sketches, settings)), settings).pairs)
    for batch, partitions in ((1, 7), (2, 3), (5, 16)):
        assert _pairs_in_batches(sketches, settings, batch, partitions) == expected
    assert tuple(sorted((uid[("r1", None)], uid[("c1", None)]))) in expected
    assert tuple(sorted((uid[("n1", 1)], uid[("n1", 2)]))) in expected  # versions meet by story key
    assert tuple(sorted((uid[("r1", None)], uid[("x1", None)]))) not in expected  # unrelated texts


def test_candidate_pairs_stay_inside_the_window():
    early = sketch_record(story("w0", STORY, "1987-03-01T00:00:00Z"), DedupSettings())
    late = sketch_record(story("w9", STORY, "1987-03-11T00:00:00Z", source="archive"), DedupSettings())
    for days, expected in ((7, set()), (11, {tuple(sorted((early.uid, late.uid)))})):
        settings = DedupSettings(window_days=days)
        entries = (packed for _, packed in band_entries([late, early], settings))
        assert set(candidate_pairs(entries, settings).pairs) == expected


def test_a_templated_burst_is_compared_under_the_bucket_cap_and_joins_its_first_story():
    records = templated_burst(60)
    sketches = [sketch_record(r, BURST_SETTINGS) for r in records]
    found = candidate_pairs((p for _, p in band_entries(sketches, BURST_SETTINGS)), BURST_SETTINGS)
    # Each story meets at most 4 + 4 earlier members in a bucket; the burst shares
    # most buckets, so nearly the same ones in each. Uncapped: every pair.
    assert len(found.pairs) <= 2 * 60 * 8 and found.dropped > 0
    uncapped = DedupSettings(compare_earliest=60, compare_latest=60)
    everything = candidate_pairs((p for _, p in band_entries(sketches, uncapped)), uncapped)
    assert everything.dropped == 0 and len(everything.pairs) == 60 * 59 // 2
    out = cluster_records(records, BURST_SETTINGS)
    first = out[0]
    assert not first.is_duplicate
    assert all(r.duplicate_of == first.event_id for r in out[1:])


def test_the_bucket_cap_keeps_the_earliest_and_the_latest_members_in_the_window():
    settings = DedupSettings(window_days=1, compare_earliest=2, compare_latest=3)
    hour = 3_600
    times = [0, 1 * hour, 2 * hour, 3 * hour, 4 * hour, 5 * hour, 6 * hour, 7 * hour, 30 * hour]
    assert compared_members(times, 7, settings) == ([0, 1, 4, 5, 6], 2)
    assert compared_members(times, 3, settings) == ([0, 1, 2], 0)
    # 30 h: only 6 h (exactly a day before) and 7 h are within the window.
    assert compared_members(times, 8, settings) == ([6, 7], 0)


def _found(pairs: list[tuple[str, str]]) -> BucketPairs:
    names = sorted({uid for pair in pairs for uid in pair})
    number = {uid: i for i, uid in enumerate(names)}
    return BucketPairs(names, np.array([number[a] for a, _ in pairs]), np.array([number[b] for _, b in pairs]), 0)


def test_pairs_named_by_many_partitions_come_out_once():
    from wirestream.transforms.dedup.batch import pack_pairs, unique_pairs
    pairs = [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]
    # Each partition of bucket keys names some pairs, several of them the same.
    named = [pack_pairs(_found(pairs), 3), pack_pairs(_found(pairs[1:]), 3), pack_pairs(_found([("a", "b")]), 3)]
    by_partition = {}
    for packed in named:
        for partition, batch in packed:
            by_partition.setdefault(partition, []).append(batch)
    out = [pair for batches in by_partition.values() for pair in unique_pairs(batches)]
    assert sorted(out) == pairs


def test_batch_pairs_follow_the_bucket_policy_member_by_member():
    # candidate_pairs applies compared_members to every bucket at once; here each
    # bucket is walked story by story instead, on buckets of random times.
    settings = DedupSettings(window_days=1, compare_earliest=2, compare_latest=3)
    rng = random.Random(11)
    uids, times, keys, members, expected, dropped = [], [], [], [], set(), 0
    for bucket in range(6):
        stories = sorted((rng.randrange(0, 2 * 86_400), f"u{bucket}-{i}") for i in range(rng.randrange(1, 30)))
        for time, uid in stories:
            members.append(len(uids))
            uids.append(uid)
            times.append(time)
            keys.append(bucket)
        for position in range(len(stories)):
            compared, left_out = compared_members([t for t, _ in stories], position, settings)
            dropped += left_out
            expected.update(tuple(sorted((stories[e][1], stories[position][1]))) for e in compared)
    packed = (uids, np.array(times, dtype=np.int64).tobytes(), np.array(keys, dtype=np.uint64).tobytes(),
              np.array(members, dtype=np.uint32).tobytes())
    found = candidate_pairs([packed], settings)
    assert found.pairs == sorted(expected) and found.dropped == dropped and dropped > 0


def test_the_keys_other_keys_equal_are_those_np_unique_counts_twice_or_more():
    from wirestream.transforms.dedup.buckets import _shared
    rng = np.random.default_rng(5)
    for size in (0, 1, 2, 3, 50, 5_000):
        keys = rng.integers(0, max(2, size // 3), size, dtype=np.int64).astype(np.uint64)  # many repeats
        _, key_of, counts = np.unique(keys, return_inverse=True, return_counts=True)
        assert _shared(keys).tolist() == (counts[key_of.reshape(-1)] > 1).tolist(), size
    assert _shared(np.array([7, 7, 2**64 - 1, 3], dtype=np.uint64)).tolist() == [True, True, False, False]


@pytest.mark.parametrize("partitions", [1, 16])
def test_the_comparisons_the_cap_drops_are_counted_in_one_step_and_over_partitions(partitions):
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter

    from wirestream.transforms.dedup import NearDuplicateClusters
    records = templated_burst(60)
    sketches = [sketch_record(r, BURST_SETTINGS) for r in records]
    dropped = candidate_pairs((p for _, p in band_entries(sketches, BURST_SETTINGS)), BURST_SETTINGS).dropped
    assert dropped > 0
    pipeline = beam.Pipeline(runner="FnApiRunner")
    _ = pipeline | beam.Create(records) | NearDuplicateClusters(replace(BURST_SETTINGS, band_partitions=partitions))
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("dedup_comparisons_capped"))["counters"]
    assert sum(c.committed for c in counters) == dropped
