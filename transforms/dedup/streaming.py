"""The streaming path: stateful DoFns around the state machines of ``streaming_state``.

A live feed is not in publication order: a copy can arrive before the story
it copies. Each story is decided as soon as its relations are known (so
latency stays low) and *re-emitted* with a higher ``cluster_revision`` when
a later arrival changes its decision. The latest revision of every record is
exactly what the batch path gives, in any arrival order, provided no story
arrives more than ``allowed_lateness_days`` (of publication time) behind the
newest stories its band keys have seen (the clock of ``EventClock``); a story later than that is still
clustered with what it copies, but the later stories it matches keep their
decision (metric ``dedup_too_late`` counts them).

Decisions have two levels (see ``decide``): a story's own relations give its
root flag, and its predecessors' root flags give its cluster. So a late
arrival E changes (1) the stories it precedes and matches, which gain a
relation, and (2) the stories that duplicate those, if a root flag flipped.
Nothing further: the graph below is acyclic.

  records ─> ProbeBands ─> MatchInBandShard ─> CollectRelations ─> AnswerRootQuestions
     │                     (band, shard)       (story)    │          (registry shard)
     │                                                    │ relations       │ root flags
     └─> KeyByStory ───────────────────────────────> DecideCluster (story) <─┘

State expires by the publication times seen in the data, never by timers:
band shards drop sketches older than window + lateness. Per-story state is
released once every band shard holding the story has seen it fall behind by
the lateness: no late relation can be made for it after that. Each shard
sends its release after any late relation it made for that story, on the same
path, so the last release cannot overtake a correction (this needs in-order
delivery between two keyed steps, which the local runner and Flink give;
Dataflow does not promise it, and there such a race would drop a correction).
DecideCluster keeps a released story until its decision is complete: a
predecessor's root flag comes by the registry and may arrive after it.
"""

from __future__ import annotations

import zlib
from typing import Any

import apache_beam as beam
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from wirestream.schemas import EventRecord
from wirestream.transforms.dedup import state_coder
from wirestream.transforms.dedup.decide import ClusterDecision, apply_decision, copies_of, is_root
from wirestream.transforms.dedup.settings import DedupSettings
from wirestream.transforms.dedup.messages import (AskRoot, BandAnswered, BandProbe, LateRelation, RecordArrived,
                                       RegisterRoot, Released, RelationsGrew, RootAnswer)
from wirestream.transforms.dedup.sketch import StorySketch, band_keys
from wirestream.transforms.dedup.streaming_state import (BandShardIndex, ClusterMember, RootRegistry,
                                              StoryRelations)
from wirestream.transforms.stage import METRICS_NAMESPACE

RELEASED = Released()


def _shard(text: str, shards: int) -> str:
    return str(zlib.crc32(text.encode()) % shards)


_Keyed = tuple[str, Any]  # string keys: a deterministic coder for state


class MatchInBandShard(beam.DoFn):
    """Keyed by (band, shard): finds each story's matches in its bucket."""

    INDEX = ReadModifyWriteStateSpec("index", state_coder.BAND_SHARD_INDEX)

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._stored = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "dedup_band_shard_sketches")
        self._capped = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_comparisons_capped")

    def process(self, element, index=beam.DoFn.StateParam(INDEX)):
        _, (bucket, wire, buckets) = element
        sketch = StorySketch._make(wire)
        state = index.read() or BandShardIndex()
        answer = state.probe(bucket, sketch, self._settings)
        index.write(state)
        self._stored.update(len(state))
        if answer.dropped:
            self._capped.inc(answer.dropped)
        yield sketch.uid, BandAnswered(answer.found, buckets, sketch.time, answer.too_late)
        for relation in answer.corrections:
            yield relation.later_uid, LateRelation(relation)
        for uid in answer.released:
            yield uid, RELEASED


class CollectRelations(beam.DoFn):
    """Keyed by story: gathers its band answers and late relations, registers
    its root flag (again whenever it flips), asks whether its predecessors
    are roots, and sends its relations on each time they grow."""

    STATE = ReadModifyWriteStateSpec("relations", state_coder.STORY_RELATIONS)
    REGISTRY = "registry"

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._too_late = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_too_late")

    def process(self, element, state=beam.DoFn.StateParam(STATE)):
        uid, message = element
        story = state.read() or StoryRelations()
        if isinstance(message, BandAnswered):
            story.expected, story.time = message.buckets, message.time
            story.answered += 1
            story.incoming.update((r.earlier_uid, r) for r in message.found)
            story.uncorrected.update(message.too_late)
            if story.complete and story.uncorrected:  # once: every band has answered
                self._too_late.inc(len(story.uncorrected))
                story.uncorrected.clear()
        elif isinstance(message, LateRelation):
            story.incoming[message.relation.earlier_uid] = message.relation
        else:
            assert isinstance(message, Released), message
            story.releases += 1
        if story.complete and len(story.incoming) != story.sent:
            yield from self._send(uid, story)
        if story.released:
            yield uid, RELEASED
            state.clear()
        else:
            state.write(story)

    def _send(self, uid: str, story: StoryRelations):
        """Registry messages go out as (uid asked about, message)."""
        seq = len(story.incoming)
        root = is_root(story.incoming.values())
        if root != story.root:
            story.root = root
            yield beam.pvalue.TaggedOutput(self.REGISTRY, (uid, RegisterRoot(uid, root, story.time, seq)))
        for relation in copies_of(story.incoming.values()):
            if relation.earlier_uid not in story.asked:
                story.asked.add(relation.earlier_uid)
                yield beam.pvalue.TaggedOutput(self.REGISTRY, (
                    relation.earlier_uid, AskRoot(uid, relation.earlier_uid, relation.earlier_order[0])))
        story.sent = seq
        yield uid, RelationsGrew(seq, list(story.incoming.values()))


class AnswerRootQuestions(beam.DoFn):
    """Keyed by registry shard: stores root flags, answers who asks, and tells
    them again when a flag flips."""

    REGISTRY = ReadModifyWriteStateSpec("registry", state_coder.ROOT_REGISTRY)

    def __init__(self, settings: DedupSettings):
        self._settings = settings

    def process(self, element, registry=beam.DoFn.StateParam(REGISTRY)):
        _, message = element
        state = registry.read() or RootRegistry()
        if isinstance(message, RegisterRoot):
            answers = state.register(message.uid, message.root, message.time, message.seq, self._settings)
        else:
            answer = state.ask(message.asker, message.uid, message.time, self._settings)
            answers = [answer] if answer else []
        registry.write(state)
        for asker, (uid, root, seq) in answers:
            yield asker, RootAnswer(uid, root, seq)


class DecideCluster(beam.DoFn):
    """Keyed by story: emits the record once its decision is known, and again
    (``cluster_revision`` + 1) whenever a late arrival changes the decision."""

    MEMBER = ReadModifyWriteStateSpec("member", state_coder.CLUSTER_MEMBER)
    RECORD = ReadModifyWriteStateSpec("record", state_coder.RECORD)  # written once, read per emission

    def __init__(self):
        self._corrections = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_corrections")
        # A correction that flips is_duplicate moves one story between the run's counts.
        self._unique = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "unique")
        self._duplicates = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "duplicates")

    def process(self, element, member_state=beam.DoFn.StateParam(MEMBER),
                record_state=beam.DoFn.StateParam(RECORD)):
        _, message = element
        member = member_state.read() or ClusterMember()
        if isinstance(message, RecordArrived):
            record_state.write(message.record)
            member.event_id = message.record.event_id
        elif isinstance(message, RelationsGrew):
            if message.seq > member.seq:
                member.seq, member.incoming = message.seq, message.incoming
        elif isinstance(message, RootAnswer):
            if message.seq > member.answers.get(message.uid, (None, -1))[1]:
                member.answers[message.uid] = (message.root, message.seq)
        else:
            assert isinstance(message, Released), message
            member.release = True
        decision = member.decision()
        if decision is not None and decision != member.emitted:
            yield self._emit(record_state.read(), member, decision)
        # Released, but a predecessor's flag may still be on its way (by the registry).
        if member.release and decision is not None:
            member_state.clear()
            record_state.clear()
        else:
            member_state.write(member)

    def _emit(self, record: EventRecord, member: ClusterMember, decision: ClusterDecision) -> EventRecord:
        before = member.emitted
        if before is not None:
            self._corrections.inc()
            if before.is_duplicate != decision.is_duplicate:
                self._duplicates.inc(1 if decision.is_duplicate else -1)
                self._unique.inc(-1 if decision.is_duplicate else 1)
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
            keys = band_keys(sketch, s)
            for key in keys:
                yield f"{key >> 32}:{key % s.shards_per_band}", BandProbe(key, wire, len(keys))
            if not keys:  # no words and no story_id: nothing can match it, nothing to wait for
                yield beam.pvalue.TaggedOutput("unbanded", (sketch.uid, BandAnswered([], 0, sketch.time, [])))

        probed = sketched | "ProbeBands" >> beam.FlatMapTuple(probes).with_output_types(_Keyed).with_outputs(
            "unbanded", main="probes")
        band_answers = (probed.probes
                        | "MatchInBandShard" >> beam.ParDo(MatchInBandShard(s)).with_input_types(_Keyed))
        relations = ((band_answers, probed.unbanded)
                     | "MergeBandAnswers" >> beam.Flatten().with_output_types(_Keyed)
                     | "CollectRelations" >> beam.ParDo(CollectRelations(s)).with_input_types(_Keyed)
                     .with_outputs(CollectRelations.REGISTRY, main="relations"))
        answers = (relations[CollectRelations.REGISTRY]
                   | "KeyByRegistryShard" >> beam.MapTuple(
                       lambda uid, message: (_shard(uid, s.registry_shards), message)).with_output_types(_Keyed)
                   | "AnswerRootQuestions" >> beam.ParDo(AnswerRootQuestions(s)).with_input_types(_Keyed))
        keyed_records = sketched | "KeyByStory" >> beam.MapTuple(
            lambda record, sketch: (StorySketch._make(sketch).uid, RecordArrived(record)))
        return ((keyed_records, relations.relations, answers)
                | "MergeForDecision" >> beam.Flatten().with_output_types(_Keyed)
                | "DecideCluster" >> beam.ParDo(DecideCluster()).with_input_types(_Keyed))
