import copy
import random

from benchmarks.bench_dedup import agency_delays, batch_clusters, cluster_fields, latest_revisions, streaming_run
from tests.transforms.dedup.stories import chain_records, mixed_records, run_beam
from wirestream.transforms.dedup import DedupSettings, cluster_records, record_uid
from wirestream.transforms.dedup.decide import cluster_id_for


def test_streaming_transform_in_publication_order_matches_batch_without_corrections():
    # Small shard counts so that stories share keys as they would under load.
    in_publication_order = sorted(mixed_records(), key=lambda r: r.published_at)
    run_beam(in_publication_order, DedupSettings(streaming=True),
              reshuffle=False)


def _check_streaming(records, settings, expected, expected_counts, per_poll=None) -> int:
    """Runs the streaming path over ``records`` in that order, as a backlog or live
    (``per_poll`` records per read of the source); checks that every story
    is emitted once at revision 0, that its latest revision is ``expected``, and that
    the run's counts (revision-0 records, moved by the dedup stage when a correction
    flips one) are ``expected_counts``. Returns how many records were written again."""
    outputs, counters = streaming_run(records, settings, per_poll)
    first = [fields for _, revision, fields in outputs if revision == 0]
    assert len(first) == len(records)
    latest = latest_revisions(outputs)
    differ = {uid: (latest.get(uid), expected[uid]) for uid in expected if latest.get(uid) != expected[uid]}
    assert not differ and latest.keys() == expected.keys()
    counts = (sum(not f[1] for f in first) + counters.get("unique", 0),
              sum(f[1] for f in first) + counters.get("duplicates", 0))
    assert counts == expected_counts
    return counters.get("dedup_corrections", 0)


def _batch_outcome(records, settings):
    """Batch cluster fields by story uid, and the (unique, duplicate) counts."""
    decided = batch_clusters(records, settings)
    duplicates = sum(fields[1] for fields in decided.values())
    return decided, (len(decided) - duplicates, duplicates)


def test_streaming_latest_revisions_equal_batch_in_any_arrival_order():
    records = chain_records()
    # The stories span 3 days: any order of them is within a 4-day lateness.
    settings = DedupSettings(streaming=True, allowed_lateness_days=4)
    expected, expected_counts = _batch_outcome(records, settings)
    by_time = sorted(records, key=lambda r: r.published_at)
    orders = [by_time[::-1]] + [random.Random(seed).sample(records, len(records)) for seed in range(3)]
    for per_poll in (None, 1, 3):  # a backlog, and live
        corrections = [_check_streaming(order, settings, expected, expected_counts, per_poll) for order in orders]
        if per_poll == 1:  # in reverse order every copy is first decided without its original
            assert corrections[0] > 0
    orphan = next(r for r in records if r.story_id == "o1")
    assert expected[record_uid(orphan)][1:3] == (False, None)  # the orphan path is the one exercised


def test_streaming_equals_batch_on_the_labelled_evaluation_with_agency_delays(shared_data):
    # The 2,020 stories of the labelled evaluation (copies, re-sends, hard negatives,
    # updates) arrive in wire order with each story delayed by 0-12 hours, so that
    # copies often arrive before the story they copy; default settings. Live, 20
    # stories per read: copies are decided before their originals come, and corrected.
    from benchmarks.dedup_eval import build
    records = [s.record for s in build().stories]
    arrival = agency_delays(records, hours=12)
    settings = DedupSettings(streaming=True)
    expected, expected_counts = _batch_outcome(records, settings)
    assert _check_streaming(arrival, settings, expected, expected_counts, per_poll=20) > 0
    _check_streaming(arrival, settings, expected, expected_counts)  # the same as a backlog


def test_streaming_equals_batch_on_the_labelled_evaluation_in_a_random_order(shared_data):
    # Any order at all: 8 months of stories shuffled, with a lateness covering them.
    from benchmarks.dedup_eval import build
    records = [s.record for s in build().stories]
    arrival = random.Random(3).sample(records, len(records))
    settings = DedupSettings(streaming=True, allowed_lateness_days=400)
    expected, expected_counts = _batch_outcome(records, settings)
    assert _check_streaming(arrival, settings, expected, expected_counts, per_poll=50) > 0


# Worked out by hand from the rules (see transforms/dedup/__init__.py), not by
# running either path: story -> (duplicate of, update of). b1 extends r1; o1 copies
# b1 only, so its one predecessor is a duplicate: it leads its own cluster but is
# no root; x1 copies b1 and o1, neither a root, so it leads its own too. n1 v1
# repeats r1 three days on; n1 v2 is its update. c1-c3 are copies of r1.
CHAIN_BY_HAND = {"r1": (None, None), "b1": ("r1", None), "o1": (None, None), "x1": (None, None),
                 "c1": ("r1", None), "c2": ("r1", None), "c3": ("r1", None),
                 "n1v1": ("r1", None), "n1v2": (None, "n1v1")}


def _by_hand(records):
    name = {r.event_id: f"{r.story_id}v{r.version}" if r.version else r.story_id for r in records}
    uid = {record_uid(r): name[r.event_id] for r in records}
    return name, uid


def test_batch_and_streaming_give_the_clusters_worked_out_by_hand():
    records = chain_records()
    name, uid = _by_hand(records)
    leader = {n: next(e for e, m in name.items() if m == n) for n in name.values()}

    def fields(story):
        copy_of, update_of = CHAIN_BY_HAND[story]
        cluster = cluster_id_for(leader[copy_of or story])
        return cluster, copy_of is not None, copy_of and leader[copy_of], update_of and leader[update_of]

    expected = {u: fields(n) for u, n in uid.items()}
    settings = DedupSettings(streaming=True, allowed_lateness_days=4)
    assert {record_uid(r): cluster_fields(r) for r in cluster_records(copy.deepcopy(records))} == expected
    by_time = sorted(records, key=lambda r: r.published_at)
    for order in (by_time, by_time[::-1], random.Random(5).sample(records, len(records))):
        for per_poll in (None, 2):
            outputs, _ = streaming_run(order, settings, per_poll)
            assert latest_revisions(outputs) == expected


def test_streaming_state_expires_by_the_watermark_and_stays_bounded(shared_data):
    # 40 Reuters stories arriving a day apart (the feed's watermark follows), with a
    # 1-day window and lateness: a story's state lives 3 days of arrival time (the
    # retention, 2 days, and a day more), so about 3 stories' worth is ever held. A
    # copy arriving a day after its original is found; one arriving 10 days after
    # finds its original's state gone and leads its own cluster.
    from benchmarks.bench_dedup import POLLS
    from benchmarks.dedup_data import reuters_records
    from benchmarks.state_meter import metered_state
    from tests.transforms.dedup.stories import STORY, story
    settings = DedupSettings(streaming=True, window_days=1, allowed_lateness_days=1)
    original = story("r1", STORY)
    soon = story("c1", STORY + " Reuter", "1987-03-02T11:00:00Z", source="courier")
    late = story("c2", STORY + " Ends.", "1987-03-02T12:00:00Z", source="late")
    others = reuters_records()[:37]
    records = [original, soon, *others[:8], late, *others[8:]]
    with metered_state() as meter:
        outputs, _ = streaming_run(records, settings, per_poll=1, seconds_apart=86_400, meter=meter)
    latest = latest_revisions(outputs)
    assert latest[record_uid(soon)][2] == original.event_id
    assert latest[record_uid(late)][1:3] == (False, None)
    assert len(latest) == len(records)
    per_story = sum(meter.written.values()) / len(records)
    held = [sum(h.values()) for _, _, h in POLLS]
    assert len(held) >= len(records) and max(held) < 5 * per_story < sum(meter.written.values()) / 4
    assert meter.keys_held() == 0  # the run's end fired every timer: nothing left


def test_a_bucket_step_answers_each_story_once_per_bundle_for_all_its_buckets():
    import apache_beam as beam
    from apache_beam.testing.util import assert_that

    from wirestream.transforms.dedup.messages import JoinBucket
    from wirestream.transforms.dedup.streaming import MatchInBucket

    # Two stories sharing three buckets: six answers, one per bucket, travel as one per story.
    first, second = "aa" * 10, "bb" * 10
    joins = [(f"bucket-{b}", JoinBucket(uid, time, 3, b"")) for uid, time in ((first, 100), (second, 200))
             for b in range(3)]

    def check(answers):
        assert sorted(uid for uid, _ in answers) == [first, second]  # one message each
        assert all((answer.buckets, answer.answered) == (3, 3) for _, answer in answers)
        named = [(uid, candidate) for uid, answer in answers for candidate in answer.candidates]
        # Each bucket names the pair to whichever story came to it second: once per story at most.
        assert named and len(named) == len(set(named)) and set(named) <= {(first, second), (second, first)}

    with beam.Pipeline(runner="FnApiRunner") as p:
        matched = (p | beam.Create(joins) | beam.ParDo(MatchInBucket(DedupSettings(streaming=True)))
                   .with_outputs(MatchInBucket.COMPARE, main="answers"))
        assert_that(matched.answers, check)


class _Bag:
    def __init__(self):
        self.items = []

    def read(self):
        return list(self.items)

    def add(self, item):
        self.items.append(item)

    def clear(self):
        self.items = []


class _Timer:
    def set(self, timestamp):
        self.timestamp = timestamp


def test_a_bundle_that_ends_between_a_storys_buckets_answers_for_those_it_saw():
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.timestamp import Timestamp

    from wirestream.transforms.dedup.messages import JoinBucket
    from wirestream.transforms.dedup.streaming import MatchInBucket

    step = MatchInBucket(DedupSettings(streaming=True))
    step.start_bundle()
    arrived = Timestamp(seconds=500)
    for b in range(2):  # two of the story's three buckets; the third is in the next bundle
        out = list(step.process((f"bucket-{b}", JoinBucket("cc" * 10, 100, 3, b"")), arrived, GlobalWindow(),
                                _Bag(), _Timer()))
        assert out == []  # not all its buckets yet
    (left,) = list(step.finish_bundle())
    assert left.value[0] == "cc" * 10 and tuple(left.value[1][:2]) == (3, 2)
    assert left.timestamp == arrived and left.windows == (GlobalWindow(),)
    step.start_bundle()
    assert list(step.process(("bucket-2", JoinBucket("cc" * 10, 100, 3, b"")), arrived, GlobalWindow(),
                             _Bag(), _Timer())) == []
    (last,) = list(step.finish_bundle())  # the rest at the bundle's end: the counts add up to 3
    assert last.value[0] == "cc" * 10 and tuple(last.value[1][:2]) == (3, 1)
    step.start_bundle()
    assert list(step.finish_bundle()) == []  # nothing carried over from a bundle to the next
