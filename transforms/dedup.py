"""De-duplication stage (first version: exact duplicates by normalised body)."""

from __future__ import annotations

import hashlib
import re

import apache_beam as beam

from schemas import EventRecord

_WS = re.compile(r"\s+")


def body_fingerprint(record: EventRecord) -> str:
    # A headline-only flash has no body: its headline is its text.
    text = record.body or record.headline
    return hashlib.sha256(_WS.sub(" ", text).strip().lower().encode("utf-8")).hexdigest()


def sort_key(record: EventRecord) -> tuple:
    # Earliest publication first; undated last; event_id breaks ties deterministically.
    return (record.published_at is None, record.published_at or "", record.event_id)


def assign_cluster(fingerprint: str, members: list[EventRecord]) -> list[EventRecord]:
    members = sorted(members, key=sort_key)
    first = members[0]
    for i, record in enumerate(members):
        record.cluster_id = fingerprint[:32]
        record.is_duplicate = i > 0
        record.duplicate_of = first.event_id if i > 0 else None
        record.similarity = 1.0
    return members


class NearDuplicateClusters(beam.PTransform):
    def expand(self, records):
        return (records
                | "KeyByFingerprint" >> beam.Map(lambda r: (body_fingerprint(r), r))
                | "GroupByFingerprint" >> beam.GroupByKey()
                | "AssignClusters" >> beam.FlatMapTuple(lambda fp, rs: assign_cluster(fp, list(rs))))
