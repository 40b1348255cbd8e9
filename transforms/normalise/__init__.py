"""Normalise stage: Story -> EventRecord with UTC dates, ISO 639-1 language and clean text."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import dateparser
from langdetect import DetectorFactory, detect_langs

from schemas import EventRecord, Story, derive_event_id

DetectorFactory.seed = 0  # langdetect is random unless seeded


@dataclass(frozen=True)
class NormaliseSettings:
    default_timezone: str = "UTC"
    source_timezones: dict[str, str] = field(default_factory=dict)


def _utc(dt: Optional[datetime]) -> Optional[str]:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalise_date(raw: Optional[str], settings: NormaliseSettings) -> tuple[Optional[str], list[str]]:
    if not raw:
        return None, ["published_at: missing"]
    dt = dateparser.parse(raw.strip(), settings={"TIMEZONE": settings.default_timezone,
                                                  "RETURN_AS_TIMEZONE_AWARE": True})
    if dt is None:
        return None, [f"published_at: unparseable {raw!r}"]
    return _utc(dt), []


def detect_language(text: str) -> tuple[str, float]:
    if len(text.strip()) < 20:
        return "und", 0.0
    best = detect_langs(text[:2000])[0]
    return best.lang.split("-")[0], round(best.prob, 4)


def normalise_story(story: Story, settings: NormaliseSettings = NormaliseSettings()) -> EventRecord:
    published_at, quality = normalise_date(story.published_raw, settings)
    updated_at, _ = normalise_date(story.updated_raw, settings) if story.updated_raw else (None, [])
    language, confidence = detect_language(f"{story.headline}\n{story.body}")
    declared = story.language_raw.split("-")[0].lower()[:2] if story.language_raw else None
    story_id = story.story_id or "sha256:" + hashlib.sha256(
        f"{story.headline}\n{story.body}".encode()).hexdigest()[:32]
    return EventRecord(
        event_id=derive_event_id(story.source, story_id, story.version, story.headline, story.body),
        story_id=story_id, version=story.version, source=story.source, headline=story.headline,
        body=story.body, url=story.url, section=story.section,
        related_headlines=list(story.related_headlines), published_at=published_at,
        published_raw=story.published_raw, updated_at=updated_at, language=language,
        language_confidence=confidence, language_declared=declared, dates_mentioned=[],
        origin=story.origin, format=story.format, quality=quality,
        subjects=list(story.subjects), place_labels=list(story.place_labels))
