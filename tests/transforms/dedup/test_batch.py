import copy
import json
import random

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from wirestream.schemas import Origin
from tests.transforms.dedup.stories import STORY, copies, decisions, mixed_records, run_beam, story
from wirestream.transforms.dedup import DedupSettings, NearDuplicateClusters, cluster_records


def test_light_edits_cluster_with_the_earliest_report():
    out = {r.story_id: r for r in cluster_records(copies())}
    original = out["r1"]
    assert not original.is_duplicate and original.duplicate_of is None
    for sid in ("c1", "c2", "c3"):
        assert out[sid].cluster_id == original.cluster_id
        assert out[sid].is_duplicate and out[sid].duplicate_of == original.event_id
        assert 0.8 <= out[sid].similarity <= 1.0
    assert out["x1"].cluster_id != original.cluster_id and not out["x1"].is_duplicate


def test_every_record_comes_out_once_with_exactly_one_original_per_cluster():
    again = copies()[0]
    again.origin = Origin(kind="file", ingested_at="2024-01-02T00:00:00Z", path="replay.jsonl", item=0)
    records = copies() + [again]  # the same story read again from another file
    out = cluster_records(records)
    assert len(out) == len(records)
    clusters = {}
    for r in out:
        clusters.setdefault(r.cluster_id, []).append(r)
    for members in clusters.values():
        assert sum(not r.is_duplicate for r in members) == 1


def test_same_clusters_whatever_the_arrival_order():
    expected = decisions(cluster_records(copies()))
    for seed in range(5):
        shuffled = copies()
        random.Random(seed).shuffle(shuffled)
        assert decisions(cluster_records(shuffled)) == expected


@pytest.mark.parametrize("partitions", [1, 3, 16])
def test_batch_transform_matches_the_plain_functions_in_any_order_and_any_number_of_bucket_partitions(partitions):
    # A run in one process shuffles its bucket keys in one partition, a cluster's in many.
    run_beam(mixed_records(), DedupSettings(band_partitions=partitions), reshuffle=True)


def test_batch_transform_keeps_a_record_given_twice():
    records = copies() + [copies()[1]]  # the same record, same origin: one sketch sent twice
    with beam.Pipeline(runner="FnApiRunner") as p:
        clustered, _ = p | beam.Create(records) | NearDuplicateClusters()
        out = clustered | beam.Map(lambda r: (r.story_id, r.is_duplicate))
        assert_that(out, equal_to([("r1", False), ("c1", True), ("c1", True), ("c2", True), ("c3", True),
                                   ("x1", False)]))


def test_a_record_dedup_cannot_sketch_is_a_dead_letter_and_the_rest_are_clustered():
    broken = copies()[0]
    broken.story_id, broken.body = "broken", None  # not a string: sketching fails
    for streaming in (False, True):
        with beam.Pipeline(runner="FnApiRunner") as p:
            clustered, dead = (p | beam.Create(copies() + [broken])
                               | NearDuplicateClusters(DedupSettings(streaming=streaming)))
            assert_that(clustered | beam.Map(lambda r: (r.story_id, r.is_duplicate)),
                        equal_to([("r1", False), ("c1", True), ("c2", True), ("c3", True), ("x1", False)]))
            assert_that(dead | beam.Map(lambda d: (d.stage, d.error.split(":")[0], json.loads(d.raw)["story_id"])),
                        equal_to([("dedup", "TypeError", "broken")]), label="DeadLetters")


def test_a_story_without_a_time_is_clustered_by_its_kafka_time_with_a_note():
    original = story("r1", STORY, "1987-03-02T10:00:00Z")
    undated = story("c1", STORY + " Reuter", None, source="courier")  # its date was unreadable
    undated.origin = Origin(kind="kafka", ingested_at="1987-03-02T11:00:00Z", topic="wire", partition=0,
                            offset=7, timestamp="1987-03-02T11:00:00.250Z")
    for streaming in (False, True):
        with beam.Pipeline(runner="FnApiRunner") as p:
            clustered, _ = (p | beam.Create([copy.deepcopy(undated), copy.deepcopy(original)])
                            | NearDuplicateClusters(DedupSettings(streaming=streaming)))
            note = ["published_at: unknown; de-duplicated by the Kafka record time"]
            # Streaming writes the copy, which came first, again once its original is in.
            expected = [("r1", 0, None, []), ("c1", int(streaming), original.event_id, note)]
            expected += [("c1", 0, None, note)] if streaming else []
            assert_that(clustered | beam.Map(lambda r: (r.story_id, r.cluster_revision, r.duplicate_of, r.quality)),
                        equal_to(expected))


def test_spilled_sketches_read_back_as_they_were_and_a_file_cut_short_says_so(tmp_path, monkeypatch):
    import tempfile

    from wirestream.transforms.dedup import sketched
    from wirestream.transforms.dedup.batch import _SKETCHES, _sketches_of, sketched_batch
    from wirestream.transforms.spill import spill_directory
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pairs = [sketched(r, DedupSettings()) for r in copies()]
    carried = sketched_batch(pairs, DedupSettings())
    with spill_directory() as directory:
        spilled = sketched_batch(pairs, DedupSettings(band_partitions=1, spill_dir=directory))
        path, offset, length, _ = spilled[_SKETCHES]
        assert _sketches_of(spilled[_SKETCHES]) == carried[_SKETCHES] == [s for _, s in pairs]
        rows = [len(pairs) - 1, 0]  # only the candidates' are read, in the order asked
        assert _sketches_of(spilled[_SKETCHES], rows) == _sketches_of(carried[_SKETCHES], rows) == [
            pairs[-1][1], pairs[0][1]]
        assert spilled[:_SKETCHES] == carried[:_SKETCHES]  # the records and uids travel as ever
        with open(path, "r+b") as handle:
            handle.truncate(offset + length - 1)
        with pytest.raises(OSError, match="bytes of sketches expected"):
            _sketches_of(spilled[_SKETCHES])
    assert list(tmp_path.iterdir()) == []


def test_sketches_are_spilled_only_for_the_one_step_clustering():
    with pytest.raises(ValueError, match="band_partitions=1"):
        DedupSettings(spill_dir="/tmp", band_partitions=16)
