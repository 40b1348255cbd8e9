"""The bucket policy: which stories sharing a band bucket are compared (shared by the batch and streaming paths)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Iterable, NamedTuple

import numpy as np

from transforms.dedup.settings import DedupSettings


def compared_members(times: Sequence[int], position: int, settings: DedupSettings) -> tuple[list[int], int]:
    """The bucket policy: which earlier members of a bucket a story is compared with.

    ``times`` are the bucket's members in bucket order (time, uid) and ``position``
    the story's place among them. Of the earlier members within the window, the
    story meets the ``compare_earliest`` first (in a burst of one template they hold
    its original) and the ``compare_latest`` last (a re-send is close in time);
    the others are dropped and their number returned, so that a burst costs
    O(n) comparisons, not O(n^2). On Reuters-21578 no bucket holds more than 6
    stories within a window, so the cap never changes a cluster there."""
    first = bisect.bisect_left(times, times[position] - settings.window_seconds, 0, position)
    eligible = position - first
    if eligible <= settings.compare_earliest + settings.compare_latest:
        return list(range(first, position)), 0
    return (list(range(first, first + settings.compare_earliest))
            + list(range(position - settings.compare_latest, position)),
            eligible - settings.compare_earliest - settings.compare_latest)


class BucketPairs(NamedTuple):
    pairs: list[tuple[str, str]]  # (uid, uid), smaller uid first, sorted, each once
    dropped: int  # comparisons left out by the bucket policy (``compared_members``), per bucket


def candidate_pairs(entries: Iterable[tuple], settings: DedupSettings) -> BucketPairs:
    """Pairs of stories sharing a bucket, published within the window of each
    other, and compared under the bucket policy. A pair sharing several buckets
    comes out once (per call: several partitions may each name it)."""
    uids, times, keys, members = [], [], [], []
    for batch_uids, batch_times, batch_keys, batch_members in entries:
        members.append(np.frombuffer(batch_members, dtype=np.uint32).astype(np.int64) + len(uids))
        uids.extend(batch_uids)
        times.append(np.frombuffer(batch_times, dtype=np.int64))
        keys.append(np.frombuffer(batch_keys, dtype=np.uint64))
    if not keys:
        return BucketPairs([], 0)
    keys, members, times = np.concatenate(keys), np.concatenate(members), np.concatenate(times)
    _, key_of, counts = np.unique(keys, return_inverse=True, return_counts=True)
    collided = counts[key_of] > 1
    keys, members = keys[collided], members[collided]
    # Bucket order is (time, uid): the same whatever the batches or partitions.
    uid_rank = np.argsort(np.argsort(np.array(uids, dtype=object))) if len(members) else members
    order = np.lexsort((uid_rank[members], times[members], keys)) if len(members) else members
    keys, members = keys[order], members[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    pairs, dropped = set(), 0
    for bucket in np.split(members, starts[1:]):
        bucket_times = times[bucket].tolist()
        bucket = bucket.tolist()
        for position in range(1, len(bucket)):
            compared, left_out = compared_members(bucket_times, position, settings)
            dropped += left_out
            b = uids[bucket[position]]
            for earlier in compared:
                a = uids[bucket[earlier]]
                if a != b:
                    pairs.add((a, b) if a < b else (b, a))
    return BucketPairs(sorted(pairs), dropped)
