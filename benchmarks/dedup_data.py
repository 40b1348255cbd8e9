"""Reuters-21578 stories as normalised EventRecords, for the dedup benchmark
and its labelled evaluation."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import datetime, timezone
from typing import Optional

from benchmarks.datasets import data_dir
from wirestream.schemas import EventRecord, Origin, Story
from wirestream.transforms.normalise import unnormalised_record
from wirestream.schemas.times import utc_iso
from wirestream.transforms.normalise.dates import parse_time
from wirestream.transforms.normalise.text import clean_text

_INGESTED = datetime(2024, 1, 1, tzinfo=timezone.utc)


def reuters_date(raw: str) -> Optional[str]:
    """The story's time as the normaliser reads it (UTC, the default zone), or None when
    it has none to compare by: unreadable, or a day without a usable time."""
    parsed = parse_time(raw, "UTC", _INGESTED)
    return utc_iso(parsed.instant) if parsed and not parsed.date_only else None


def make_record(story_id: str, headline: str, body: str, published_at: Optional[str],
                source: str = "reuters", version: Optional[int] = None, item: int = 0) -> EventRecord:
    """The record the pipeline would make of this (already clean) text, published at
    ``published_at``, in English: built by the parse-only path's one constructor, so
    the event id is derived as everywhere else."""
    origin = Origin(kind="file", ingested_at=utc_iso(_INGESTED), path="reuters21578.jsonl.gz", item=item)
    story = Story(format="reuters-sgml", headline=headline, body=body, origin=origin,
                  story_id=story_id, version=version, source=source)
    return replace(unnormalised_record(story), published_at=published_at, language="en",
                   language_confidence=1.0, cluster_id=None, quality=[])


def reuters_rows() -> list[dict]:
    with gzip.open(data_dir() / "reuters21578" / "reuters21578.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def reuters_records(rows: Optional[list[dict]] = None) -> list[EventRecord]:
    """One record per story; title-only briefs use the title as body (body must not be empty)."""
    records = []
    for row in rows if rows is not None else reuters_rows():
        title = clean_text(row["title"] or "")
        body = clean_text(row["body"] or "") or title or "(empty)"
        records.append(make_record(str(row["newid"]), title, body, reuters_date(row["date_raw"]),
                                   item=row["newid"]))
    return records
