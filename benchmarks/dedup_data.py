"""Reuters-21578 stories as normalised EventRecords, for the dedup benchmark
and its labelled evaluation."""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime
from typing import Optional

from benchmarks.datasets import data_dir
from wirestream.schemas import EventRecord, Origin, derive_event_id
from wirestream.transforms.normalise.text import clean_text

_DATE = re.compile(r"\s*(\d{1,2}-[A-Z]{3}-\d{4})\s+(\d{1,2}):(\d\d):(\d\d)")


def reuters_date(raw: str) -> Optional[str]:
    m = _DATE.match(raw)
    if not m or int(m.group(2)) > 23:
        return None
    day = datetime.strptime(m.group(1), "%d-%b-%Y")
    return f"{day:%Y-%m-%d}T{int(m.group(2)):02d}:{m.group(3)}:{m.group(4)}Z"


def make_record(story_id: str, headline: str, body: str, published_at: Optional[str],
                source: str = "reuters", version: Optional[int] = None, item: int = 0) -> EventRecord:
    return EventRecord(
        event_id=derive_event_id(source, story_id, version, headline, body), story_id=story_id,
        version=version, source=source, headline=headline, body=body, url=None, section=None,
        related_headlines=[], published_at=published_at, published_raw=None, updated_at=None,
        language="en", language_confidence=1.0, language_declared=None, dates_mentioned=[],
        origin=Origin(kind="file", ingested_at="2024-01-01T00:00:00Z", path="reuters21578.jsonl.gz",
                      item=item), format="reuters-sgml")


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
