import random

from tests.transforms.dedup.stories import BURST_SETTINGS, OTHER_STORY, STORY, templated_burst, story
from wirestream.transforms.dedup import DedupSettings
from wirestream.transforms.dedup.relate import relate
from wirestream.transforms.dedup.sketch import band_keys, sketch_record
from wirestream.transforms.dedup.streaming_state import (COMPACT_AFTER, BucketMembers, ClusterMember, RootFlag, StoryRelations,
                                              pack_member, relate_with_stored)

DAY = 86_400


class Bucket:
    """One bucket's bag, as MatchInBucket keeps it: packed members appended, compacted when long."""

    def __init__(self, settings):
        self.runs, self.settings = [], settings

    def add(self, sketch, arrival=0):
        members = BucketMembers(self.runs)
        answer = members.add(sketch.uid, sketch.time, arrival, self.settings)
        if answer.stored:
            compacted = members.compacted(arrival, self.settings)
            member = pack_member(sketch.uid, sketch.time, arrival)
            self.runs = [compacted + member] if compacted is not None else self.runs + [member]
        return answer


def test_a_bucket_names_earlier_and_later_members_and_stores_only_packed_members():
    settings = DedupSettings()
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    original = sketch_record(story("r1", STORY), settings)
    bucket = Bucket(settings)
    assert bucket.add(copy_).candidates == []
    assert bucket.add(original).candidates == [copy_.uid]  # later in bucket order: a late arrival
    assert sum(map(len, bucket.runs)) == 2 * 26  # uid, publication and arrival times; no sketch
    assert bucket.add(original).stored is False and bucket.add(original).candidates == []  # read again


def test_a_uid_ending_in_zero_bytes_comes_back_whole():
    settings = DedupSettings()
    sketch = sketch_record(story("r1", STORY), settings)._replace(uid="0a7c14692e008dee3f00")
    bucket = Bucket(settings)
    bucket.add(sketch)
    later = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    assert bucket.add(later).candidates == ["0a7c14692e008dee3f00"]


def test_a_bucket_leaves_out_and_drops_members_that_arrived_longer_ago_than_the_retention():
    settings = DedupSettings(window_days=1, allowed_lateness_days=1)
    first = sketch_record(story("r1", STORY), settings)
    bucket = Bucket(settings)
    bucket.add(first, arrival=0)
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    assert bucket.add(copy_, arrival=2 * DAY).candidates == [first.uid]  # just within: arrived 2 days on
    another = sketch_record(story("d", STORY + " Ends.", "1987-03-02T13:00:00Z", source="d"), settings)
    assert bucket.add(another, arrival=2 * DAY + 1).candidates == [copy_.uid]  # the first is out now
    # Compaction keeps only the members still taking part.
    others = [sketch_record(story(f"x{i}", OTHER_STORY, "1987-03-03T10:00:00Z", source=f"o{i}"), settings)
              for i in range(COMPACT_AFTER)]
    for other in others:
        bucket.add(other, arrival=5 * DAY)
    assert len(bucket.runs) < COMPACT_AFTER
    held = {m["uid"].ljust(10, b"\0").hex() for m in BucketMembers(bucket.runs).members}
    assert held == {o.uid for o in others}


def test_a_bucket_applies_the_cap_in_any_arrival_order():
    records = templated_burst(40)
    sketches = [sketch_record(r, BURST_SETTINGS) for r in records]
    by_uid = {s.uid: s for s in sketches}
    for order in (sketches, sketches[::-1], random.Random(4).sample(sketches, len(sketches))):
        bucket, relations, made, dropped = Bucket(BURST_SETTINGS), set(), 0, 0
        for sketch in order:
            answer = bucket.add(sketch)
            for uid in answer.candidates:
                relation = relate(by_uid[uid], sketch, BURST_SETTINGS)
                made += relation is not None
                if relation is not None:
                    relations.add((relation.earlier_uid, relation.later_uid))
            dropped += answer.dropped
        # Every story met the first one, whatever came first.
        assert {(sketches[0].uid, s.uid) for s in sketches[1:]} <= relations
        if order is sketches:  # in publication order each story meets at most 4 + 4 earlier ones
            assert made <= 40 * 8 and dropped == sum(max(0, i - 8) for i in range(40))


def test_a_pair_is_related_where_the_stored_sketch_is_in_either_direction():
    settings = DedupSettings()
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    original = sketch_record(story("r1", STORY), settings)
    on_time = relate_with_stored(original, copy_, settings)
    assert on_time.late is None and (on_time.reply.earlier_uid, on_time.reply.later_uid) == (original.uid, copy_.uid)
    late = relate_with_stored(copy_, original, settings)  # the original came after its copy
    assert late.reply is None and (late.late.earlier_uid, late.late.later_uid) == (original.uid, copy_.uid)
    unrelated = sketch_record(story("x", OTHER_STORY), settings)
    assert relate_with_stored(original, unrelated, settings) == (None, None)


def test_story_relations_are_complete_once_every_bucket_answered_and_every_candidate_was_compared():
    settings = DedupSettings()
    original = sketch_record(story("r1", STORY), settings)
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    relation = relate(original, copy_, settings)
    story_ = StoryRelations()
    story_.compared_with(original.uid, relation)  # a comparison can overtake the bucket naming it
    assert not story_.complete
    story_.bucket_answered(3, [original.uid], 1)
    story_.bucket_answered(3, [], 1)
    assert not story_.complete
    story_.bucket_answered(3, [original.uid, "other"], 1)  # several buckets name one candidate
    assert not story_.complete  # "other" not compared yet
    story_.compared_with("other", None)
    assert story_.complete and list(story_.incoming) == [original.uid]
    assert story_.compared == set()  # nothing kept that is no longer needed


def test_story_relations_count_the_buckets_each_answer_speaks_for():
    # MatchInBucket answers for all of a story's buckets in a bundle at once, and a
    # bundle may end between them: the counts add up, whatever the split.
    for split in ([3], [2, 1], [1, 1, 1]):
        story_ = StoryRelations()
        for i, answered in enumerate(split):
            assert not story_.complete
            story_.bucket_answered(3, ["other"] if i == 0 else [], answered)
        assert not story_.complete  # "other" not compared yet
        story_.compared_with("other", None)
        assert story_.complete
    story_ = StoryRelations()
    story_.bucket_answered(3, [], 2)
    assert not story_.complete  # one bucket still to answer


def test_root_flag_answers_askers_before_and_after_registration_and_again_on_a_flip():
    flag = RootFlag()
    assert flag.ask("early") is False
    assert flag.register(True, 0) == ["early"]
    assert flag.ask("late") is True
    assert flag.register(True, 1) == []  # more relations, same flag: nobody told
    assert sorted(flag.register(False, 2)) == ["early", "late"]
    assert flag.register(True, 1) == []  # an overtaken older flag is ignored
    assert (flag.root, flag.seq) == (False, 2)


def test_a_decision_waits_for_its_predecessors_flags_and_at_expiry_uses_what_is_known():
    settings = DedupSettings()
    original = sketch_record(story("r1", STORY), settings)
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    relation = relate(original, copy_, settings)
    member = ClusterMember(event_id=copy_.event_id, seq=1, incoming=[relation])
    assert member.decision() is None  # the original's flag has not come
    assert member.final_decision().is_duplicate is False  # it never came: the copy leads
    member.answers[original.uid] = (True, 0)
    assert member.decision().duplicate_of == original.event_id


def test_band_keys_put_a_copy_in_most_of_its_originals_buckets():
    settings = DedupSettings()
    original = sketch_record(story("r1", STORY), settings)
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    shared = set(band_keys(original, settings)) & set(band_keys(copy_, settings))
    assert len(shared) >= settings.bands // 2  # so a pair is named by many buckets, and related once


def test_a_bucket_kept_across_arrivals_is_what_a_read_of_its_bag_gives():
    # MatchInBucket keeps the buckets of a bundle in memory: taking in each new member
    # (and each compaction) must leave them as a read of the bag would give them.
    settings = DedupSettings()
    sketches = [sketch_record(r, settings) for r in templated_burst(3 * COMPACT_AFTER)]
    kept, runs = BucketMembers([]), []
    for i, sketch in enumerate(random.Random(6).sample(sketches, len(sketches))):
        assert kept.add(sketch.uid, sketch.time, i, settings).stored
        member = pack_member(sketch.uid, sketch.time, i)
        compacted = kept.compacted(i, settings)
        runs = [compacted + member] if compacted is not None else runs + [member]
        kept.stored(member, compacted)
        read = BucketMembers(runs)
        assert read.members.tobytes() == kept.members.tobytes() and kept.runs == runs
    assert len(runs) <= COMPACT_AFTER + 1
