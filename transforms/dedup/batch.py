"""The batch path, and the same clustering in memory."""

from __future__ import annotations

import functools
import pickle
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Optional

import apache_beam as beam
import numpy as np

from wirestream.schemas import EventRecord
from wirestream.transforms.dedup.buckets import BucketPairs, candidate_pairs
from wirestream.transforms.dedup.decide import (ClusterDecision, apply_decision, copies_of, decide, decided_fields,
                                                is_root, own_cluster)
from wirestream.transforms.dedup.relate import Relation, relate
from wirestream.transforms.dedup.settings import DedupSettings
from wirestream.transforms.dedup.sketch import StorySketch, band_entries, sketch_record
from wirestream.transforms.spill import read_spilled, spilled
from wirestream.transforms.stage import METRICS_NAMESPACE, OutcomeCounters

BAND_BATCH = 1_024  # stories whose bucket keys travel together, packed as bytes
_UID = StorySketch._fields.index("uid")  # sketches travel as plain tuples


class SketchedBatch(NamedTuple):
    """Stories as the batch path carries them: a batch per element, so that Beam's
    per-element work is paid per batch, not per story. ``records`` are the
    records (encoded by the record coder when ``BatchClusters`` has one),
    ``uids`` and ``sketches`` (plain tuples) their stories', and ``bands`` their
    bucket keys packed by partition (``band_entries``). It travels as a plain
    tuple (``sketched_batch``), which Beam encodes without pickling."""

    records: list
    uids: list[str]
    # Or, spilled, where they wait: (file, offset, length, where each ends in it: int64 bytes).
    sketches: list[tuple] | tuple[str, int, int, bytes]
    bands: list[tuple[int, tuple]]


# Positions in the plain tuple a SketchedBatch travels as.
_RECORDS, _UIDS, _SKETCHES, _BANDS = (SketchedBatch._fields.index(f) for f in SketchedBatch._fields)


def sketched_batch(pairs: Iterable[tuple[Any, tuple]], settings: DedupSettings,
                   carry: Optional[Callable[[list], list]] = None) -> tuple:
    """(record, sketch) pairs -> a ``SketchedBatch`` as a plain tuple; ``carry`` turns
    the batch's records into what its ``records`` carry (each encoded by the record
    coder, or rendered: ``BatchClusters``)."""
    pairs = list(pairs)
    records = [record for record, _ in pairs]
    sketches = [sketch for _, sketch in pairs]
    bands = band_entries(map(StorySketch._make, sketches), settings, settings.band_partitions) if pairs else []
    uids = [sketch[_UID] for sketch in sketches]
    if settings.spill_dir is not None:
        # Each pickled on its own: clustering reads back only the candidates' (one in seven).
        parts = [pickle.dumps(sketch, protocol=pickle.HIGHEST_PROTOCOL) for sketch in sketches]
        ends = np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)))
        sketches = (*spilled(settings.spill_dir, b"".join(parts)), int(ends[-1]) if len(ends) else 0, ends.tobytes())
    return tuple(SketchedBatch(carry(records) if carry is not None else records, uids, sketches, bands))


def _sketches_of(carried: list[tuple] | tuple[str, int, int, bytes], rows: Optional[list[int]] = None) -> list[tuple]:
    """A batch's sketches (those at ``rows``, else all), read back where they were
    spilled (``sketched_batch``)."""
    if isinstance(carried, list):
        return carried if rows is None else [carried[row] for row in rows]
    path, offset, length, ends = carried
    data = memoryview(read_spilled(path, offset, length, "sketches"))
    ends = [0, *np.frombuffer(ends, dtype=np.int64).tolist()]
    return [pickle.loads(data[ends[row]:ends[row + 1]]) for row in (range(len(ends) - 1) if rows is None else rows)]


def rendered_undecided(rendering) -> Callable[[list[EventRecord]], list]:
    """``carry`` for ``BatchClusters(..., rendering=rendering)``: the records rendered
    with the cluster each has when no decision names it, as most stories have."""
    return functools.partial(_render_undecided, rendering)


def _render_undecided(rendering, records: list[EventRecord]) -> list:
    return rendering.render([apply_decision(record, own_cluster(record.event_id)) for record in records])


def cluster_records(records: list[EventRecord], settings: DedupSettings = DedupSettings()) -> list[EventRecord]:
    """The whole clustering in memory, with the same functions the Beam paths use."""
    sketches = [sketch_record(r, settings) for r in records]
    decisions, _ = decided_in_memory([([s.uid for s in sketches], [tuple(s) for s in sketches])],
                                     (packed for _, packed in band_entries(sketches, settings)), settings)
    for record, sketch in zip(records, sketches):
        apply_decision(record, _decision(record.event_id, decisions.get(sketch.uid)))
    return records


def decided_in_memory(batches: Iterable[tuple[list[str], Any]], entries: Iterable[tuple], settings: DedupSettings
                      ) -> tuple[dict[str, tuple[list[Relation], list[str]]], int]:
    """What the shuffles of ``BatchClusters`` decide, in one place: per story an earlier
    one relates to, its incoming relations and the uids of the roots among the stories
    it copies (``Decide``'s output), and the comparisons the bucket policy dropped.
    ``batches``: the stories' uids and sketches (``SketchedBatch``'s, plain tuples or
    spilled), ``entries``: their bucket keys (``band_entries``)."""
    found = candidate_pairs(entries, settings)
    wanted = set(found.names)  # only candidates' sketches are read
    by_uid = {}
    for uids, carried in batches:
        rows = [row for row, uid in enumerate(uids) if uid in wanted]
        if rows:
            by_uid.update((wire[_UID], wire) for wire in _sketches_of(carried, rows))
    incoming: dict[str, list[Relation]] = defaultdict(list)
    outgoing: dict[str, list[Relation]] = defaultdict(list)
    for a, b in found.pairs:
        relation = relate(StorySketch._make(by_uid[a]), StorySketch._make(by_uid[b]), settings)
        if relation is not None:
            incoming[relation.later_uid].append(relation)
            outgoing[relation.earlier_uid].append(relation)
    roots: dict[str, list[str]] = defaultdict(list)
    for uid, relations in outgoing.items():
        if is_root(incoming.get(uid, ())):
            for relation in copies_of(relations):
                roots[relation.later_uid].append(uid)
    return {uid: (relations, roots.get(uid, [])) for uid, relations in incoming.items()}, found.dropped


def _sketches_to_partners(sketches: list[tuple], others: dict):
    """Sends each candidate's sketch (of a batch's) to itself and to each partner
    with a smaller uid, which relates the pair: one sketch copy per pair. Most
    stories are no candidate and send nothing."""
    for wire in sketches:
        uid = wire[_UID]
        partners = others.get(uid)
        if partners is None:
            continue
        yield uid, (True, wire)
        for other in set(partners):  # a pair named by several partitions is named once per partition
            if other < uid:
                yield other, (False, wire)


def _relate_at_story(item, settings: DedupSettings):
    _, parts = item
    own = next(StorySketch._make(wire) for is_own, wire in parts if is_own)
    later = {wire[0]: wire for is_own, wire in parts if not is_own}  # a record given twice comes twice
    for wire in later.values():
        relation = relate(own, StorySketch._make(wire), settings)
        if relation is not None:
            yield relation


def _root_flags(item):
    """Per story: its own incoming relations, and its root flag sent to each
    story that duplicates it."""
    uid, tagged = item
    incoming = [rel for tag, rel in tagged if tag == "in"]
    outgoing = [rel for tag, rel in tagged if tag == "out"]
    yield uid, ("incoming", incoming)
    if is_root(incoming):
        for rel in copies_of(outgoing):
            yield rel.later_uid, ("root", rel.earlier_uid)


class _CandidatePairs(beam.DoFn):
    """Keyed by partition of the bucket keys: the candidate pairs of its buckets."""

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._capped = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_comparisons_capped")

    def process(self, element):
        found = candidate_pairs(element[1], self._settings)
        self._capped.inc(found.dropped)
        yield from pack_pairs(found, self._settings.band_partitions)


def pack_pairs(found: BucketPairs, partitions: int) -> list[tuple[int, tuple]]:
    """Pairs as ``(partition, (uids, first, second))`` with index arrays as bytes, split
    by a hash of the smaller uid. Stories sharing many buckets (a templated burst)
    are named as a pair by many bucket partitions: packed, the copies cost bytes,
    not Beam elements, until ``unique_pairs`` drops them."""
    if not len(found.first):
        return []
    names = found.names
    smaller, pair_of = np.unique(found.first, return_inverse=True)
    hashes = np.fromiter((zlib.crc32(names[i].encode()) for i in smaller.tolist()), dtype=np.int64, count=len(smaller))
    partition_of = hashes[pair_of.reshape(-1)] % partitions
    packed = []
    for partition in np.unique(partition_of).tolist():
        mine = partition_of == partition
        first, second = found.first[mine], found.second[mine]
        # The partition's uids in uid order, and each pair's positions among them.
        used, position = np.unique(np.concatenate([first, second]), return_inverse=True)
        position = position.reshape(-1).astype(np.uint32)
        packed.append((partition, ([names[i] for i in used.tolist()], position[:len(first)].tobytes(),
                                   position[len(first):].tobytes())))
    return packed


def unique_pairs(packed: Iterable[tuple]) -> list[tuple[str, str]]:
    """The pairs of some ``pack_pairs`` outputs of one partition, each once."""
    uids: list[str] = []
    codes = []
    for batch_uids, first, second in packed:
        offset = len(uids)
        uids.extend(batch_uids)
        codes.append((np.frombuffer(first, dtype=np.uint32).astype(np.uint64) + offset) << np.uint64(32)
                     | (np.frombuffer(second, dtype=np.uint32).astype(np.uint64) + offset))
    if not codes:
        return []
    # The same uid comes in several batches: number each story once.
    names = sorted(set(uids))
    number = {uid: i for i, uid in enumerate(names)}
    rank = np.fromiter((number[uid] for uid in uids), dtype=np.uint64, count=len(uids))
    codes = np.concatenate(codes)
    first, second = rank[(codes >> np.uint64(32)).astype(np.int64)], rank[(codes & np.uint64(0xFFFFFFFF)).astype(np.int64)]
    unique = np.unique(first << np.uint64(32) | second)
    return [(names[int(c >> 32)], names[int(c & 0xFFFFFFFF)]) for c in unique.tolist()]


class BatchClusters(beam.PTransform):
    """Batches of (record, sketch) pairs (``sketched_batch``) -> the records with
    their clusters applied. With a ``record_coder`` the records arrive encoded by
    it and are decoded only where their cluster is applied: carried as bytes,
    they cost Beam no coder work where the batches wait for the decisions."""

    def __init__(self, settings: DedupSettings, record_coder: Optional[beam.coders.Coder] = None,
                 batched: bool = False, rendering=None):
        super().__init__()
        self._settings = settings
        self._record_coder = record_coder
        self._batched = batched  # the records come out in their batches, as lists
        # The records arrive rendered (``RenderedShards.render``, with the cluster of a story
        # no decision names) and leave as those parts amended, the outcomes counted here.
        self._rendering = rendering

    def expand(self, batches):
        """``batches``: ``SketchedBatch`` tuples (``sketched_batch``)."""
        decisions = self._decisions(batches)
        if self._rendering is not None:
            # Grouped by the sink's shard before the decisions are applied, not after: the
            # records then cross one stage boundary while they wait, not two.
            return (batches
                    | "PartsByShard" >> beam.FlatMap(_parts_by_shard)
                    | "GroupByShard" >> beam.GroupByKey()
                    | "ApplyDecisions" >> beam.ParDo(_AmendRendered(self._rendering), beam.pvalue.AsDict(decisions)))
        decode = self._record_coder.decode if self._record_coder is not None else None
        # Where the records wait for the decisions only their uids go with them:
        # the sketches would be encoded and decoded there for nothing.
        return (batches
                | "RecordsByStory" >> beam.Map(lambda batch: (batch[_UIDS], batch[_RECORDS]))
                | "ApplyDecisions" >> (beam.MapTuple(_applied_batch, beam.pvalue.AsDict(decisions), decode)
                                       .with_output_types(beam.typehints.List[EventRecord]) if self._batched else
                                       beam.FlatMapTuple(_apply_to_batch, beam.pvalue.AsDict(decisions), decode)
                                       .with_output_types(EventRecord)))

    def _decisions(self, batches):
        """(uid, Decide's output) for each story an earlier one relates to."""
        s = self._settings
        if s.band_partitions == 1:
            # One partition: every bucket key meets in one place, and so can the rest.
            return (batches
                    | "SketchesAndKeys" >> beam.Map(lambda batch: (0, (batch[_UIDS], batch[_SKETCHES], batch[_BANDS])))
                    | "GroupAll" >> beam.GroupByKey()
                    | "Decide" >> beam.ParDo(_DecideInOneStep(s)))
        # Only uids and bucket keys, packed per batch of stories, are shuffled by bucket.
        pairs = (batches
                 | "BandEntries" >> beam.FlatMap(lambda batch: batch[_BANDS])
                 | "GroupByPartition" >> beam.GroupByKey()
                 | "CandidatePairs" >> beam.ParDo(_CandidatePairs(s))
                 | "GroupPairsByStory" >> beam.GroupByKey()
                 | "UniquePairs" >> beam.FlatMapTuple(lambda _, packed: unique_pairs(packed)))
        # The few candidates' partners, by story, are a small side input: only
        # candidates' sketches (plain tuples, not pickled) go on, each to the partners it is related at.
        others = (pairs
                  | "PairEnds" >> beam.FlatMap(lambda pair: (pair, pair[::-1]))
                  | "GroupByCandidate" >> beam.GroupByKey())
        # A step with a side input reads a materialised copy of its input: that copy
        # holds only the sketches, taken from the batches where they are made.
        relations = (batches
                     | "Sketches" >> beam.Map(lambda batch: batch[_SKETCHES])
                     | "SketchesToPartners" >> beam.FlatMap(_sketches_to_partners, beam.pvalue.AsDict(others))
                     | "GroupByRelatingStory" >> beam.GroupByKey()
                     | "Relate" >> beam.FlatMap(_relate_at_story, s))
        decisions = (
            relations
            | "BothEnds" >> beam.FlatMap(lambda rel: [(rel.later_uid, ("in", rel)),
                                                      (rel.earlier_uid, ("out", rel))])
            | "GroupByStory" >> beam.GroupByKey()
            | "RootFlags" >> beam.FlatMap(_root_flags)
            | "GroupForDecision" >> beam.GroupByKey()
            | "Decide" >> beam.FlatMapTuple(_decide_batch))
        return decisions


class _DecideInOneStep(beam.DoFn):
    """All batches' (uids, sketches, bucket keys) -> Decide's output (``decided_in_memory``)."""

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._capped = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_comparisons_capped")

    def process(self, element):
        parts = list(element[1])
        decisions, dropped = decided_in_memory(
            ((uids, sketches) for uids, sketches, _ in parts),
            (packed for _, _, bands in parts for _, packed in bands), self._settings)
        self._capped.inc(dropped)
        yield from decisions.items()


def _decide_batch(uid, parts):
    incoming = [rel for tag, value in parts if tag == "incoming" for rel in value]
    if incoming:
        roots = [value for tag, value in parts if tag == "root"]
        yield uid, (incoming, roots)


def _apply_to_batch(uids: list[str], records: list, decisions: Optional[dict] = None, decode=None):
    """Each record of a batch with its cluster: its own (a leader) when no
    decision names it."""
    if decode is not None:
        records = map(decode, records)
    for uid, record in zip(uids, records):
        yield apply_decision(record, _decision(record.event_id, decisions.get(uid)))


def _decision(event_id: str, found: Optional[tuple]) -> ClusterDecision:
    """A story's decision from what ``Decide`` gave for it (its incoming relations and
    root predecessors), or none: then it leads a cluster of its own."""
    if found is None:
        return own_cluster(event_id)
    incoming, roots = found
    return decide(event_id, incoming, roots)


def _parts_by_shard(batch: tuple) -> list[tuple[int, tuple]]:
    """A batch's rendered parts by shard, each with the uids and event ids of its lines
    (an event record's sort key in its shard is its event id)."""
    uids = batch[_UIDS]
    return [(part[0], ([uids[row] for row in part[1]], part[2], part)) for part in batch[_RECORDS]]


class _AmendRendered(beam.DoFn):
    """A shard's (uids, event ids, rendered part) triples -> (shard, its parts), the
    records a decision names amended with their clusters; counts each record as
    unique or duplicate. What the sink's ``write(..., rendered=True)`` takes."""

    def __init__(self, rendering):
        self._rendering = rendering
        self._outcomes = OutcomeCounters()

    def process(self, element, decisions):
        shard, triples = element
        parts, records, duplicates = [], 0, 0
        for uids, event_ids, part in triples:
            fields_by_row = {row: decided_fields(_decision(event_id, decisions[uid]))
                             for row, uid, event_id in zip(part[1], uids, event_ids) if uid in decisions}
            records += len(uids)
            duplicates += sum(fields["is_duplicate"] for fields in fields_by_row.values())
            parts.append(self._rendering.amend(part, fields_by_row))
        self._outcomes.count(records, duplicates)
        yield shard, parts


def _applied_batch(uids: list[str], records: list, decisions: Optional[dict] = None, decode=None) -> list[EventRecord]:
    return list(_apply_to_batch(uids, records, decisions, decode))
