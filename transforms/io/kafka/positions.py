"""Offset positions: where reading a partition starts and where it stops."""

from __future__ import annotations

import logging
import sys
from typing import Optional

from wirestream.transforms.io.kafka.spec import _CLIENT_TIMEOUT_MS, KafkaSourceSpec

_LOG = logging.getLogger("wirestream.kafka")

UNBOUNDED = sys.maxsize


def _tp(topic: str, partition: int):
    from kafka import TopicPartition
    return TopicPartition(topic, partition)


def end_offset(consumer, tp) -> int:
    """The offset after the last record now in the partition (ListOffsets latest)."""
    return consumer.end_offsets([tp], timeout_ms=_CLIENT_TIMEOUT_MS)[tp]


def offset_for_time(consumer, tp, epoch_ms: int) -> Optional[int]:
    """The first offset whose record timestamp is >= ``epoch_ms`` (ListOffsets by
    timestamp); None: no such record yet."""
    found = consumer.offsets_for_times({tp: epoch_ms}, timeout_ms=_CLIENT_TIMEOUT_MS).get(tp)
    return found.offset if found is not None else None


def resume_offset(tp, committed: Optional[int], beginning: int, end: int) -> int:
    """Where ``start=committed`` begins: the group's committed offset, or the
    log start when the group has none. A committed offset the broker no longer
    has is reset to the log start, loudly:
    - below it (retention or DeleteRecords removed records the group never
      read): those are gone; the oldest record kept is the next to read;
    - above the end (a log truncated by an unclean leader election, or a
      commit made against an older topic of the same name): every record now
      there is newer than the commit, so all are read.
    """
    if committed is None:
        return beginning
    if committed < beginning:
        _LOG.error("%s/%s: the committed offset %s is no longer on the broker (the log starts "
                   "at %s): offsets %s to %s were removed unread; resetting to %s",
                   tp.topic, tp.partition, committed, beginning, committed, beginning - 1,
                   beginning)
        return beginning
    if committed > end:
        _LOG.error("%s/%s: the committed offset %s is past the end of the log (%s): the log "
                   "was truncated, or the commit was made against an older topic; resetting "
                   "to the log start %s, so every record now in the partition is read",
                   tp.topic, tp.partition, committed, end, beginning)
        return beginning
    return committed


def resolve_offsets(consumer, spec: KafkaSourceSpec, tp) -> tuple[int, int]:
    """(first offset to read, offset to stop before) for one partition, now."""
    beginning = consumer.beginning_offsets([tp], timeout_ms=_CLIENT_TIMEOUT_MS)[tp]
    if spec.start == "earliest":
        start = beginning
    elif spec.start == "latest":
        start = end_offset(consumer, tp)
    elif spec.start == "committed":
        start = resume_offset(tp, consumer.committed(tp, timeout_ms=_CLIENT_TIMEOUT_MS),
                              beginning, end_offset(consumer, tp))
    else:
        found = offset_for_time(consumer, tp, spec.start)
        start = found if found is not None else end_offset(consumer, tp)
    if spec.stop == "never":
        stop = UNBOUNDED
    elif spec.stop == "end":
        stop = end_offset(consumer, tp)
    else:
        found = offset_for_time(consumer, tp, spec.stop)
        stop = found if found is not None else UNBOUNDED  # the time is still ahead: read until it
    return start, max(start, stop)
