"""The one graph: read -> parse -> normalise -> tag -> dedup -> write."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import apache_beam as beam

from wirestream.schemas import EventRecord
from wirestream.schemas.coders import EventRecordCoder
from wirestream.transforms.dedup import DedupSettings, NearDuplicateClusters
from wirestream.transforms.dedup.batch import BatchClusters
from wirestream.transforms.normalise import NormaliseSettings, normalise_story, unnormalised_record
from wirestream.transforms.parse import ParseSettings, parse_record
from wirestream.transforms.stage import METRICS_NAMESPACE, ApplyStage, OutcomeCounters
from wirestream.transforms.tag import tag_record
from wirestream.pipelines.sinks import SinkSettings, rendering, write_records
from wirestream.pipelines.story_chain import ChainSettings, StoryChain
from wirestream.transforms.io.sinks import PROGRESS, RECORDS, RecordKind


@dataclass(frozen=True)
class Source:
    """What the graph reads. Without ``commit``, ``read`` produces RawRecords;
    with it, ``{RECORDS: RawRecords, PROGRESS: Acknowledgements}``, and
    ``commit`` takes every Acknowledgement of what is done (Kafka offsets)."""

    read: beam.PTransform
    bounded: bool
    commit: Optional[beam.PTransform] = None


beam.coders.registry.register_coder(EventRecord, EventRecordCoder)


@dataclass(frozen=True)
class PipelineSettings:
    sink: str
    dead_letter: str
    parse: ParseSettings = ParseSettings()
    normalise: NormaliseSettings = NormaliseSettings()
    sink_settings: SinkSettings = SinkSettings()
    drop_duplicates: bool = False
    tag_data_dir: Optional[str] = None
    parse_only: bool = False
    dedup: DedupSettings = DedupSettings()


def chain_settings(settings: PipelineSettings, rendering=None) -> ChainSettings:
    """What the fused per-story step of a bounded run needs to know."""
    return ChainSettings(parse=settings.parse, normalise=settings.normalise,
                         tag_data_dir=settings.tag_data_dir, dedup=settings.dedup,
                         parse_only=settings.parse_only, rendering=rendering)


class _CountOutcome(beam.DoFn):
    """Counts each event record as unique or duplicate; the run summary reads these.
    ``batched``: each element is a list of records."""

    def __init__(self, batched: bool = False):
        self._batched = batched
        self._outcomes = OutcomeCounters()

    def process(self, element):
        # A re-emitted record (cluster_revision > 0) moves its count in the dedup stage.
        first = [r for r in (element if self._batched else (element,)) if r.cluster_revision == 0]
        self._outcomes.count(len(first), sum(r.is_duplicate for r in first))
        yield element


class _CountDeadLetters(beam.DoFn):
    def __init__(self):
        self._dead = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, dead_letter):
        self._dead.inc()
        yield dead_letter


class StoriesToEventRecords(beam.PTransform):
    """RawRecords -> (event records, dead letters): every stage but read and write.
    Asked for ``batches``, a bounded run with dedup, which clusters batches of
    stories (``BatchClusters``), gives its event records in lists as they were
    batched, so that a sink taking lists pays Beam's per-element work per batch
    (``batched`` says whether they come so). Given the sink's ``rendering`` as
    well, they come as its rendered parts instead (``rendering`` says whether),
    amended with their clusters and counted where those are applied."""

    def __init__(self, settings: PipelineSettings, batches: bool = False, rendering=None):
        super().__init__()
        self._settings = settings
        self.batched = batches and not settings.dedup.streaming and not settings.parse_only
        self.rendering = rendering if self.batched else None

    def expand(self, raw_records):
        finished, dead = (self._streaming(raw_records) if self._settings.dedup.streaming
                          else self._bounded(raw_records))
        batched = self.batched
        counted = finished if self.rendering is not None else (
            finished | "CountOutcomes" >> beam.ParDo(_CountOutcome(batched)).with_output_types(
                beam.typehints.List[EventRecord] if batched else EventRecord))
        dead_letters = (dead
                        | "AllDeadLetters" >> beam.Flatten()
                        | "CountDeadLetters" >> beam.ParDo(_CountDeadLetters()))
        return counted, dead_letters

    def _bounded(self, raw_records):
        """The per-story stages fused in one step (pipelines/story_chain.py),
        then the batch clusters."""
        s = self._settings
        chain = chain_settings(s, self.rendering)
        if s.parse_only:
            finished, dead = raw_records | "PerStory" >> StoryChain(chain, output_type=EventRecord)
            return finished, [dead]
        # Batches of stories (records as bytes until the clusters are applied).
        batches, dead = raw_records | "PerStory" >> StoryChain(chain, output_type=beam.typehints.Any)
        return batches | "Dedup" >> BatchClusters(s.dedup, record_coder=EventRecordCoder(), batched=self.batched,
                                                  rendering=self.rendering), [dead]

    def _streaming(self, raw_records):
        """One step per stage: their names are what a savepoint or a pipeline
        update restores state by, so they stay as they are."""
        s = self._settings
        stories, parse_dead = raw_records | "Parse" >> ApplyStage(
            "parse", lambda raw: parse_record(raw, s.parse), many=True)
        if s.parse_only:
            finished, normalise_dead = stories | "Normalise" >> ApplyStage(
                "normalise", unnormalised_record, output_type=EventRecord)
            return finished, [parse_dead, normalise_dead]
        normalised, normalise_dead = stories | "Normalise" >> ApplyStage(
            "normalise", lambda story: normalise_story(story, s.normalise), output_type=EventRecord)
        # Tags do not depend on clusters: tagged first, a record that fails
        # tagging never becomes a cluster leader that is not written, and a
        # record re-emitted by streaming dedup is not tagged again.
        tagged, tag_dead = normalised | "Tag" >> ApplyStage(
            "tag", functools.partial(tag_record, data_dir=s.tag_data_dir), output_type=EventRecord)
        finished, dedup_dead = tagged | "Dedup" >> NearDuplicateClusters(s.dedup)
        return finished, [parse_dead, normalise_dead, tag_dead, dedup_dead]


def dropped_as_duplicate(record: EventRecord) -> bool:
    """What --drop-duplicates leaves out. A re-emitted record is always written:
    an upserting sink must learn that a story it holds as unique turned out to
    be a duplicate (and a dropped duplicate that became unique must appear)."""
    return record.is_duplicate and record.cluster_revision == 0


def build_pipeline(pipeline: beam.Pipeline, source: Source, settings: PipelineSettings) -> None:
    read = pipeline | "Read" >> source.read
    raw_records, done = (read[RECORDS], [read[PROGRESS]]) if source.commit is not None else (read, [])
    process = StoriesToEventRecords(settings, batches=not settings.drop_duplicates,
                                    rendering=rendering(settings.sink, settings.sink_settings))
    events, dead_letters = raw_records | "Process" >> process
    batched = process.batched
    # Every sink returns what it has durably written; a source that commits
    # (Kafka) commits only that, so a restart never skips a record.
    if settings.drop_duplicates:
        kept, dropped = events | "DropDuplicates" >> beam.Partition(
            lambda record, _: int(dropped_as_duplicate(record)), 2)
        events = kept
        done.append(dropped)  # counted and done with: nothing more to write
    done.append(events | "WriteEvents" >> write_records(
        settings.sink, RecordKind.EVENTS, settings.sink_settings, batched=batched,
        rendered=process.rendering is not None))
    done.append(dead_letters | "WriteDeadLetters" >> write_records(
        settings.dead_letter, RecordKind.DEAD_LETTERS, settings.sink_settings))
    if source.commit is not None:
        (done | "FlattenAcknowledgements" >> beam.Flatten()
         | "CommitKafkaOffsets" >> source.commit)
