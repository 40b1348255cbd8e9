"""Tag stage (first version: topics from the source's own IPTC Media Topic codes)."""

from __future__ import annotations

from schemas import EventRecord


def tag_record(record: EventRecord) -> EventRecord:
    topics = [{"code": s.code, "label": s.name} for s in record.subjects if s.code.startswith("medtop:")]
    record.tags = {"countries": [], "places": [], "people": [], "organisations": [],
                   "topics": topics, "event_types": []}
    return record
