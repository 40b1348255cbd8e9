"""The streaming path: stateful DoFns around the state machines of ``streaming_state``.

A live feed is not in publication order: a copy can arrive before the story
it copies. Each story is decided as soon as its relations are known (so
latency stays low) and *re-emitted* with a higher ``cluster_revision`` when
a later arrival changes its decision. The latest revision of every record is
exactly what the batch path gives, in any arrival order, provided a story
arrives (by the runner's watermark) no more than ``allowed_lateness_days``
after the stories it matches would have (see Expiry below).

Decisions have two levels (see ``decide``): a story's own relations give its
root flag, and its predecessors' root flags give its cluster. So a late
arrival E changes (1) the stories it precedes and matches, which gain a
relation, and (2) the stories that duplicate those, if a root flag flipped.
Nothing further: the graph below is acyclic.

  records ─> ProbeBands ─┬─ joins ─> MatchInBucket ──── compare ──> RelateAtStory ── compared, late ─┐
     │                   │          (band, bucket) ── answers ─┐  (stored story)                      v
     │                   └─ sketch (once) ─────────────────────┼──────────^            CollectRelations (story)
     │                                                         └─────────────────────────────>  │ flags, asks
     │                                                                       relations │   AnswerRootQuestions
     │                                                                                 v   (story asked about)
     └─> KeyByStory ─────────────────────────────────────────────────────────> DecideCluster (story) <─┘

What travels and what is stored: a bucket stores only packed (uid, publication
time, arrival time) members in an append-only bag, so a story adds 22 bytes to
each of its buckets (as ``state_coder`` writes them) and rewrites nothing; its sketch passes through on the way
to the candidates the bucket policy names, and is stored once, by story, where
those later arrivals are related to it (as the batch path relates candidate
pairs where one sketch is). Every other state is per story, so a bundle writes
only the keys of its own stories.

Expiry is by event-time timers on the runner's watermark (the arrival time of
the data: Kafka record times), set per bucket at the newest member's arrival +
window + lateness and per story at its arrival + window + lateness + a day, so
total state is bounded by what arrived within that time, on every runner: no
publication time, however far ahead, expires anything. A bucket also leaves
out of comparisons its members that arrived longer ago than that (a bucket in
use for ever never expires). A late relation reaching a story whose state has
gone is counted (``dedup_too_late``) and makes no correction. At expiry a story
whose decision is still incomplete (a predecessor's flag never came) is
written with what is known, so no record is lost.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from wirestream.schemas import EventRecord
from wirestream.transforms.dedup import state_coder
from wirestream.transforms.dedup.decide import ClusterDecision, apply_decision, copies_of, is_root
from wirestream.transforms.dedup.messages import (AskRoot, BucketAnswered, Compared, CompareWith, JoinBucket, LateRelation,
                                       RecordArrived, RegisterRoot, RelationsGrew, RootAnswer, StoreSketch)
from wirestream.transforms.dedup.settings import DAY, DedupSettings
from wirestream.transforms.dedup.sketch import StorySketch, band_keys
from wirestream.transforms.dedup.streaming_state import (BucketMembers, ClusterMember, RootFlag, StoredSketch,
                                              StoryRelations, pack_member, relate_with_stored)
from wirestream.transforms.stage import METRICS_NAMESPACE, OutcomeCounters

_Keyed = tuple[str, Any]  # string keys: a deterministic coder for state


BUCKETS_KEPT_PER_BUNDLE = 20_000  # bounds a backlog's one big bundle


def _seconds(timestamp: Timestamp) -> int:
    """Whole seconds, rounded towards zero (so that the start of time, a bounded
    source's timestamp, stays a valid timestamp in seconds)."""
    return int(timestamp.micros / 1_000_000)


# Each DoFn's timer has its own name: Beam's FnApiRunner keys a fused stage's timer
# buffers by name alone, so two DoFns fused together with one name would fire each
# other's timers.


def story_horizon(settings: DedupSettings) -> Duration:
    """How long (event time) a story's state outlives its arrival: its buckets'
    members take part for the retention, and a day more covers messages in flight."""
    return Duration(seconds=settings.retention_seconds + DAY)


def story_state(state, new, expiry, timestamp, settings: DedupSettings):
    """A story-keyed step's state, or ``new()`` when the story is first seen, whose
    expiry timer is then set once: ``story_horizon`` after its arrival."""
    value = state.read()
    if value is None:
        value = new()
        expiry.set(timestamp + story_horizon(settings))
    return value


class _StoryAnswers:
    """A story's bucket answers gathered in one bundle, until all its buckets have answered."""

    __slots__ = ("buckets", "answered", "candidates", "timestamp", "window")

    def __init__(self, buckets: int, timestamp: Timestamp, window):
        self.buckets, self.answered = buckets, 0
        self.candidates: dict[str, None] = {}  # in order, once each
        self.timestamp, self.window = timestamp, window


class MatchInBucket(beam.DoFn):
    """Keyed by the full bucket (band, bucket value): names each arrival's candidates.

    A story's buckets answer it in one message per bundle, not one per bucket: each
    keyed message costs the runner more than the matching does, and a story is in
    dozens of buckets."""

    MEMBERS = BagStateSpec("members", state_coder.BUCKET_RUN)
    EXPIRY = TimerSpec("bucket_expiry", TimeDomain.WATERMARK)
    COMPARE = "compare"

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._capped = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_comparisons_capped")

    def start_bundle(self):
        # A story's buckets come in one bundle, and a pair shares many of them (all, in a
        # templated burst): its sketch goes to a candidate once per bundle, not once per bucket.
        self._asked: set[tuple[str, str]] = set()
        # The buckets read in this bundle, kept up to date: a burst reads the same ones per story.
        self._buckets: dict[str, BucketMembers] = {}
        # Stories some but not all of whose buckets have answered in this bundle.
        self._answers: dict[str, _StoryAnswers] = {}

    def process(self, element, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam,
                members=beam.DoFn.StateParam(MEMBERS), expiry=beam.DoFn.TimerParam(EXPIRY)):
        key, join = element
        arrival = _seconds(timestamp)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= BUCKETS_KEPT_PER_BUNDLE:
                self._buckets.clear()
            bucket = self._buckets[key] = BucketMembers(members.read())
        answer = bucket.add(join.uid, join.time, arrival, self._settings)
        if answer.stored:
            member = pack_member(join.uid, join.time, arrival)
            compacted = bucket.compacted(arrival, self._settings)
            if compacted is None:
                members.add(member)
            else:  # one run instead of many, without the members gone
                members.clear()
                members.add(compacted + member)
            bucket.stored(member, compacted)
            expiry.set(timestamp + Duration(seconds=self._settings.retention_seconds))
        if answer.dropped:
            self._capped.inc(answer.dropped)
        story = self._answers.get(join.uid)
        if story is None:
            story = self._answers[join.uid] = _StoryAnswers(join.buckets, timestamp, window)
        story.answered += 1
        story.candidates.update(dict.fromkeys(answer.candidates))
        if story.answered == join.buckets:
            del self._answers[join.uid]
            yield join.uid, BucketAnswered(join.buckets, story.answered, list(story.candidates))
        for uid in answer.candidates:
            if (join.uid, uid) not in self._asked:
                self._asked.add((join.uid, uid))
                yield beam.pvalue.TaggedOutput(self.COMPARE, (uid, CompareWith(join.sketch)))

    def finish_bundle(self):
        # Stories whose other buckets are in another bundle (a bundle may end between them).
        for uid, story in self._answers.items():
            yield WindowedValue((uid, BucketAnswered(story.buckets, story.answered, list(story.candidates))),
                                story.timestamp, (story.window,))

    @on_timer(EXPIRY)
    def expire(self, fired=beam.DoFn.TimestampParam, members=beam.DoFn.StateParam(MEMBERS),
               expiry=beam.DoFn.TimerParam(EXPIRY)):
        newest = BucketMembers(members.read()).newest_arrival()
        if newest + self._settings.retention_seconds > _seconds(fired):  # set again since (a runner may fire both)
            expiry.set(Timestamp(seconds=int(newest) + self._settings.retention_seconds))
        else:
            members.clear()


def _stored_story(uid: str, encoded: bytes) -> StorySketch:
    """A sketch as ``RelateAtStory`` stores it: without its uid, which is the key."""
    return state_coder.SKETCH.decode(encoded)._replace(uid=uid)


class RelateAtStory(beam.DoFn):
    """Keyed by story: stores its sketch once and relates to it the later arrivals
    its buckets name; a comparison that overtook the sketch waits for it."""

    SKETCH = ReadModifyWriteStateSpec("sketch", state_coder.STORED_SKETCH)
    PENDING = BagStateSpec("pending", state_coder.PENDING_COMPARISON)
    EXPIRY = TimerSpec("sketch_expiry", TimeDomain.WATERMARK)

    def __init__(self, settings: DedupSettings):
        self._settings = settings

    def start_bundle(self):
        # Stories sharing several buckets are named by each: relate a pair once per bundle.
        self._replied: set[tuple[str, str]] = set()

    def process(self, element, timestamp=beam.DoFn.TimestampParam, sketch=beam.DoFn.StateParam(SKETCH),
                pending=beam.DoFn.StateParam(PENDING), expiry=beam.DoFn.TimerParam(EXPIRY)):
        key, message = element
        stored = sketch.read()
        if isinstance(message, StoreSketch):
            if stored is not None:  # the record read again
                return
            sketch.write(StoredSketch(_seconds(timestamp), message.sketch))
            expiry.set(timestamp + story_horizon(self._settings))
            own = _stored_story(key, message.sketch)
            waiting = list(pending.read())
            if waiting:
                pending.clear()
            for asking in waiting:
                yield from self._relate(own, asking)
        else:
            assert isinstance(message, CompareWith), message
            if stored is None:
                pending.add(message.sketch)
                expiry.set(timestamp + story_horizon(self._settings))
                return
            yield from self._relate(_stored_story(key, stored.sketch), message.sketch)

    def _relate(self, own: StorySketch, encoded: bytes):
        asking = state_coder.SKETCH.decode(encoded)
        if (own.uid, asking.uid) in self._replied:
            return
        self._replied.add((own.uid, asking.uid))
        related = relate_with_stored(own, asking, self._settings)
        yield asking.uid, Compared(own.uid, related.reply)
        if related.late is not None:
            yield own.uid, LateRelation(related.late)

    @on_timer(EXPIRY)
    def expire(self, key=beam.DoFn.KeyParam, fired=beam.DoFn.TimestampParam,
               sketch=beam.DoFn.StateParam(SKETCH), pending=beam.DoFn.StateParam(PENDING),
               expiry=beam.DoFn.TimerParam(EXPIRY)):
        stored = sketch.read()
        if stored is not None and stored.arrival + story_horizon(self._settings).micros // 1_000_000 > _seconds(fired):
            expiry.set(Timestamp(seconds=int(stored.arrival)) + story_horizon(self._settings))
            return
        for encoded in pending.read():  # the sketch never came: its askers must not wait for ever
            yield state_coder.SKETCH.decode(encoded).uid, Compared(key, None)
        sketch.clear()
        pending.clear()


class CollectRelations(beam.DoFn):
    """Keyed by story: gathers its bucket answers, comparisons and late relations,
    registers its root flag (again whenever it flips), asks whether its
    predecessors are roots, and sends its relations on each time they grow."""

    STATE = ReadModifyWriteStateSpec("relations", state_coder.STORY_RELATIONS)
    EXPIRY = TimerSpec("relations_expiry", TimeDomain.WATERMARK)
    REGISTRY = "registry"

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._too_late = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_too_late")

    def process(self, element, timestamp=beam.DoFn.TimestampParam, state=beam.DoFn.StateParam(STATE),
                expiry=beam.DoFn.TimerParam(EXPIRY)):
        uid, message = element
        story = story_state(state, StoryRelations, expiry, timestamp, self._settings)
        if isinstance(message, BucketAnswered):
            story.bucket_answered(message.buckets, message.candidates, message.answered)
        elif isinstance(message, Compared):
            story.compared_with(message.uid, message.relation)
        else:
            assert isinstance(message, LateRelation), message
            story.late_relation(message.relation)
        if story.complete and len(story.incoming) != story.sent:
            yield from self._send(uid, story)
        state.write(story)

    def _send(self, uid: str, story: StoryRelations):
        """Registry messages go out keyed by the story they are about."""
        seq = len(story.incoming)
        root = is_root(story.incoming.values())
        if root != story.root:
            story.root = root
            yield beam.pvalue.TaggedOutput(self.REGISTRY, (uid, RegisterRoot(root, seq)))
        for relation in copies_of(story.incoming.values()):
            if relation.earlier_uid not in story.asked:
                story.asked.add(relation.earlier_uid)
                yield beam.pvalue.TaggedOutput(self.REGISTRY, (relation.earlier_uid, AskRoot(uid)))
        story.sent = seq
        yield uid, RelationsGrew(seq, list(story.incoming.values()))

    @on_timer(EXPIRY)
    def expire(self, state=beam.DoFn.StateParam(STATE)):
        story = state.read()
        if story is not None and story.expected is None and story.incoming:
            self._too_late.inc(len(story.incoming))  # late relations for a story already gone
        state.clear()


class AnswerRootQuestions(beam.DoFn):
    """Keyed by the story asked about: stores its root flag, answers who asks,
    and tells them again when it flips."""

    FLAG = ReadModifyWriteStateSpec("flag", state_coder.ROOT_FLAG)
    EXPIRY = TimerSpec("flag_expiry", TimeDomain.WATERMARK)

    def __init__(self, settings: DedupSettings):
        self._settings = settings

    def process(self, element, timestamp=beam.DoFn.TimestampParam, state=beam.DoFn.StateParam(FLAG),
                expiry=beam.DoFn.TimerParam(EXPIRY)):
        uid, message = element
        flag = story_state(state, RootFlag, expiry, timestamp, self._settings)
        if isinstance(message, RegisterRoot):
            for asker in flag.register(message.root, message.seq):
                yield asker, RootAnswer(uid, message.root, message.seq)
        else:
            assert isinstance(message, AskRoot), message
            if flag.ask(message.asker):
                yield message.asker, RootAnswer(uid, flag.root, flag.seq)
        state.write(flag)

    @on_timer(EXPIRY)
    def expire(self, key=beam.DoFn.KeyParam, state=beam.DoFn.StateParam(FLAG)):
        flag = state.read()
        if flag is not None and flag.root is None:  # never registered: it led when last known of
            for asker in flag.askers:
                yield asker, RootAnswer(key, True, 0)
        state.clear()


class DecideCluster(beam.DoFn):
    """Keyed by story: emits the record once its decision is known, and again
    (``cluster_revision`` + 1) whenever a late arrival changes the decision."""

    MEMBER = ReadModifyWriteStateSpec("member", state_coder.CLUSTER_MEMBER)
    RECORD = ReadModifyWriteStateSpec("record", state_coder.RECORD)  # written once, read per emission
    EXPIRY = TimerSpec("member_expiry", TimeDomain.WATERMARK)

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._corrections = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_corrections")
        # Decisions still waiting for a predecessor's flag when their state expired.
        self._decided_at_expiry = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_decided_at_expiry")
        # A correction that flips is_duplicate moves one story between the run's counts.
        self._outcomes = OutcomeCounters()

    def process(self, element, timestamp=beam.DoFn.TimestampParam, member_state=beam.DoFn.StateParam(MEMBER),
                record_state=beam.DoFn.StateParam(RECORD), expiry=beam.DoFn.TimerParam(EXPIRY)):
        _, message = element
        member = story_state(member_state, ClusterMember, expiry, timestamp, self._settings)
        if isinstance(message, RecordArrived):
            if member.event_id is not None:  # the record read again: it has one decision
                return
            record_state.write(message.record)
            member.event_id = message.record.event_id
        elif isinstance(message, RelationsGrew):
            if message.seq > member.seq:
                member.seq, member.incoming = message.seq, message.incoming
        else:
            assert isinstance(message, RootAnswer), message
            if message.seq > member.answers.get(message.uid, (None, -1))[1]:
                member.answers[message.uid] = (message.root, message.seq)
        decision = member.decision()
        if decision is not None and decision != member.emitted:
            record = message.record if isinstance(message, RecordArrived) else record_state.read()
            yield self._emit(record, member, decision)
        member_state.write(member)

    @on_timer(EXPIRY)
    def expire(self, member_state=beam.DoFn.StateParam(MEMBER), record_state=beam.DoFn.StateParam(RECORD)):
        member = member_state.read()
        if member is not None and member.emitted is None:
            decision = member.final_decision()
            if decision is not None:
                self._decided_at_expiry.inc()
                yield self._emit(record_state.read(), member, decision)
        member_state.clear()
        record_state.clear()

    def _emit(self, record: EventRecord, member: ClusterMember, decision: ClusterDecision) -> EventRecord:
        before = member.emitted
        if before is not None:
            self._corrections.inc()
            if before.is_duplicate != decision.is_duplicate:
                self._outcomes.move(decision.is_duplicate)
        member.emitted, member.revision = decision, member.revision + 1
        record = apply_decision(record, decision)
        record.cluster_revision = member.revision
        return record


class StreamingClusters(beam.PTransform):
    def __init__(self, settings: DedupSettings):
        super().__init__()
        self._settings = settings

    def expand(self, sketched):
        """``sketched``: (record, its sketch as a plain tuple) pairs."""
        s = self._settings

        def probes(record, wire):
            sketch = StorySketch._make(wire)
            encoded = state_coder.SKETCH.encode(sketch)
            keys = band_keys(sketch, s)
            for key in keys:
                yield str(key), JoinBucket(sketch.uid, sketch.time, len(keys), encoded)
            # Stored by its key, the uid: stored without it.
            yield beam.pvalue.TaggedOutput("sketch", (sketch.uid, StoreSketch(
                state_coder.SKETCH.encode(sketch._replace(uid=None)))))
            if not keys:  # no words and no story_id: nothing can match it, nothing to wait for
                yield beam.pvalue.TaggedOutput("unbanded", (sketch.uid, BucketAnswered(0, 0, [])))

        probed = sketched | "ProbeBands" >> beam.FlatMapTuple(probes).with_output_types(_Keyed).with_outputs(
            "sketch", "unbanded", main="joins")
        matched = (probed.joins
                   | "MatchInBucket" >> beam.ParDo(MatchInBucket(s)).with_input_types(_Keyed)
                   .with_outputs(MatchInBucket.COMPARE, main="answers"))
        compared = ((probed.sketch, matched[MatchInBucket.COMPARE])
                    | "MergeSketchesAndAsks" >> beam.Flatten().with_output_types(_Keyed)
                    | "RelateAtStory" >> beam.ParDo(RelateAtStory(s)).with_input_types(_Keyed))
        relations = ((matched.answers, probed.unbanded, compared)
                     | "MergeBucketAnswers" >> beam.Flatten().with_output_types(_Keyed)
                     | "CollectRelations" >> beam.ParDo(CollectRelations(s)).with_input_types(_Keyed)
                     .with_outputs(CollectRelations.REGISTRY, main="relations"))
        answers = (relations[CollectRelations.REGISTRY]
                   | "KeyByStoryAskedAbout" >> beam.Map(lambda keyed: keyed).with_output_types(_Keyed)
                   | "AnswerRootQuestions" >> beam.ParDo(AnswerRootQuestions(s)).with_input_types(_Keyed))
        keyed_records = sketched | "KeyByStory" >> beam.MapTuple(
            lambda record, sketch: (StorySketch._make(sketch).uid, RecordArrived(record)))
        return ((keyed_records, relations.relations, answers)
                | "MergeForDecision" >> beam.Flatten().with_output_types(_Keyed)
                | "DecideCluster" >> beam.ParDo(DecideCluster(s)).with_input_types(_Keyed))
