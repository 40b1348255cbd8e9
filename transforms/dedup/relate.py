"""Relating two stories: duplicate, update (later version), correction, or nothing."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Optional

import numpy as np

from wirestream.transforms.dedup.settings import DedupSettings
from wirestream.transforms.dedup.sketch import StorySketch


DUPLICATE = "duplicate"
UPDATE = "update"  # a later version of the same story_id
CORRECTION = "correction"  # a "CORRECTED -" reissue of an earlier story


@dataclass(frozen=True, slots=True)
class Relation:
    """``later`` duplicates or updates ``earlier`` (earlier in story order)."""

    kind: str
    earlier_uid: str
    earlier_event_id: str
    earlier_order: tuple
    later_uid: str
    similarity: float


def text_overlap(a: StorySketch, b: StorySketch) -> tuple[float, float]:
    """(estimated Jaccard, estimated containment of the smaller in the larger)."""
    sa = np.frombuffer(a.signature, dtype="<u4")
    sb = np.frombuffer(b.signature, dtype="<u4")
    jaccard = np.count_nonzero(sa == sb) / len(sa)
    common = jaccard * (a.shingles + b.shingles) / (1 + jaccard)
    return jaccard, min(1.0, common / max(1, min(a.shingles, b.shingles)))


def same_facts(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    """No figure contradicts the other copy: a copy may lose figures with their
    wording (a trimmed ending) or gain some (a sign-off, a dateline), but the
    same wording with another figure ("adds 1.5 billion" / "adds 2 billion",
    "Shr 15 cts vs 14 cts" / "Shr 12 cts vs 10 cts") is a different fact."""
    if a == b:  # the common case among copies, and in a templated burst
        return True
    common = {context for context, _ in a} & {context for context, _ in b}
    if not common:
        return True
    by_context_a, by_context_b = defaultdict(Counter), defaultdict(Counter)
    for context, figure in a:
        if context in common:
            by_context_a[context][figure] += 1
    for context, figure in b:
        if context in common:
            by_context_b[context][figure] += 1
    for context in common:
        fa, fb = by_context_a[context], by_context_b[context]
        if fa != fb and fa - fb and fb - fa:
            return False
    return True


def _same_subject(a: StorySketch, b: StorySketch) -> bool:
    """Short templated bodies name their company only in the headline or in a
    note, so those names must agree (one set may extend the other)."""
    if not (a.short or b.short):
        return True
    na, nb = Counter(a.names), Counter(b.names)
    if na - nb and nb - na:
        return False
    if a.tickers and b.tickers:
        return bool(set(a.tickers) & set(b.tickers))
    return a.headline_lead == b.headline_lead


def relate(a: StorySketch, b: StorySketch, settings: DedupSettings) -> Optional[Relation]:
    """The relation between two stories, or None. Symmetric in its arguments."""
    if a.uid == b.uid or abs(a.time - b.time) > settings.window_seconds:
        return None
    earlier, later = (a, b) if a.order < b.order else (b, a)
    jaccard, containment = text_overlap(earlier, later)
    kind = None
    if (later.story_key is not None and later.story_key == earlier.story_key
            and (later.version or 0) > (earlier.version or 0)):  # no version: the first one
        kind = UPDATE
    elif later.correction and not earlier.correction and containment >= settings.update_threshold:
        kind = CORRECTION
    elif (containment >= settings.threshold and jaccard >= settings.min_jaccard
          and same_facts(earlier.facts, later.facts) and _same_subject(earlier, later)):
        kind = DUPLICATE
    if kind is None:
        return None
    return Relation(kind, earlier.uid, earlier.event_id, earlier.order, later.uid, round(float(containment), 4))
