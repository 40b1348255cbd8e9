"""Near-duplicate clustering of wire stories (MinHash LSH with a fact check).

What counts as a duplicate (``relate``): two stories published within the
window whose bodies share almost all word 3-shingles (estimated containment
>= ``threshold``), whose figures agree (the numbers of one are a subset of
the other's, so a trimmed or signed-off copy matches but "FED ADDS 1.5 BLN"
and "FED ADDS 2 BLN" do not) and, for short templated bodies ("Qtly div 20
cts vs 20 cts prior..."), whose headlines name the same company. A later
version of the same story (same source and story_id, higher version) or a
"CORRECTED -" reissue is an *update*: linked by ``update_of``, never hidden.
A headline-only brief (empty body) is compared by its headline.

How clusters are formed (order-independent by definition): stories are
ordered by (publication time, event_id, origin). A story's *predecessors*
are the earlier stories it duplicates. A story with no predecessor (or that
is an update) is a *root* and leads its own cluster. A story with
predecessors is a duplicate of its earliest root predecessor. In the rare
chain where every predecessor is itself a duplicate, the story leads a
cluster of its own (an *orphan*), so two stories are only ever clustered when
they match each other directly and no cluster lacks its one original.
This needs only each story's direct relations and its predecessors' root
flags, so it runs without any global step:

* batch: only bucket keys, publication times and uids, packed as bytes per
  batch of stories, are grouped (by a partition of the bucket keys); most
  stories are alone in every bucket, and the few sharing one within the
  window become candidate pairs, under the bucket policy (``buckets``: a
  templated burst costs O(n) comparisons, not O(n^2)). Only candidates'
  sketches then meet, one copy per pair, to be related; two small shuffles by story give the root flags
  and decisions, which reach the records as a side input (only stories with
  an earlier match have one), so records themselves are never shuffled. With
  one partition (a run in one process, where the shuffles buy no parallelism)
  the bucket keys and sketches meet in one step that relates and decides in
  memory (``decided_in_memory``, what ``cluster_records`` runs too);
* streaming: stateful DoFns keyed by the full bucket (band, bucket value) keep
  packed members (uid, times) in append-only bags and name each arrival's
  candidates under the same bucket policy; each sketch is stored once, keyed
  by story, where candidates are related to it; keyed by story, the relations
  are collected and the decision made, and keyed by the story asked about, the
  root flags answer "is this predecessor a root?". A story is written as soon
  as it is decided and written again (``cluster_revision`` + 1) when a story
  that arrives later but was published earlier changes its decision, so the
  latest revisions are the batch clusters. State expires by event-time timers
  on the runner's watermark (arrival time), so no publication time far ahead
  expires anything. State is encoded by ``state_coder`` (versioned, no pickle).
"""

from __future__ import annotations

import dataclasses
import functools

import apache_beam as beam

from wirestream.schemas import EventRecord
from wirestream.transforms.dedup.batch import BAND_BATCH, BatchClusters, cluster_records, sketched_batch
from wirestream.transforms.dedup.settings import DedupSettings
from wirestream.transforms.dedup.sketch import record_uid, sketch_record
from wirestream.transforms.dedup.streaming import StreamingClusters
from wirestream.transforms.stage import ApplyStage

__all__ = ["DedupSettings", "NearDuplicateClusters", "cluster_records", "record_uid"]


def sketched(record: EventRecord, settings: DedupSettings) -> tuple[EventRecord, tuple]:
    """A record and its sketch (a plain tuple, which Beam encodes without pickling)."""
    sketch = sketch_record(record, settings)
    if not record.published_at:  # a new record: a DoFn must not change its input
        note = ("published_at: unknown; de-duplicated by the "
                + ("Kafka record time" if record.origin.timestamp else "ingest time"))
        record = dataclasses.replace(record, quality=[*record.quality, note])
    return record, tuple(sketch)


class NearDuplicateClusters(beam.PTransform):
    """records -> (the same records with cluster_id, is_duplicate, duplicate_of,
    similarity and update_of set, dead letters). A record that cannot be
    sketched becomes a dead letter of stage ``dedup`` with the record as its
    payload; no other is dropped. Streaming may emit a record again with a
    higher ``cluster_revision`` (see the streaming path)."""

    def __init__(self, settings: DedupSettings = DedupSettings()):
        super().__init__()
        self._settings = settings

    def expand(self, records):
        pairs, dead_letters = records | "Sketch" >> ApplyStage(
            "dedup", functools.partial(sketched, settings=self._settings))
        if self._settings.streaming:
            return pairs | "Streaming" >> StreamingClusters(self._settings), dead_letters
        settings = self._settings
        batches = (pairs
                   | "BatchStories" >> beam.BatchElements(min_batch_size=BAND_BATCH, max_batch_size=BAND_BATCH)
                   | "SketchedBatches" >> beam.Map(sketched_batch, settings))
        return batches | "Batch" >> BatchClusters(settings), dead_letters
