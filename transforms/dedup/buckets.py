"""The bucket policy: which stories sharing a band bucket are compared (shared by the batch and streaming paths)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Iterable, NamedTuple

import numpy as np

from wirestream.transforms.dedup.settings import DedupSettings


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


_NO_PAIRS = np.zeros(0, dtype=np.int64)


class BucketPairs(NamedTuple):
    """The pairs as numbers of stories: ``names`` are the stories' uids in uid order,
    ``first[i] < second[i]`` the numbers of pair i, pairs in order and each once."""

    names: list[str]
    first: np.ndarray
    second: np.ndarray
    dropped: int  # comparisons left out by the bucket policy (``compared_members``), per bucket

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(uid, uid), smaller uid first, sorted, each once."""
        names = self.names
        return [(names[a], names[b]) for a, b in zip(self.first.tolist(), self.second.tolist())]


def _distinct(ordered: np.ndarray) -> np.ndarray:
    """A sorted array's values, each once: ``np.unique`` without its sort, and without the
    masked-array check that imports ``numpy.ma`` (a hundredth of a second) on first use."""
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def _shared(keys: np.ndarray) -> np.ndarray:
    """Per key, whether another key equals it. A run's 700,000 keys are sorted without
    their order (NumPy's vectorised sort: a sixth of what ``argsort`` costs) for the
    few values that repeat; a bitmap of those values' low bits leaves few keys to look
    up among them."""
    shared = np.zeros(len(keys), dtype=bool)
    ordered = np.sort(keys)
    repeated = _distinct(ordered[1:][ordered[1:] == ordered[:-1]])
    if not len(repeated):
        return shared
    # About one key in sixteen that does not repeat passes the bitmap.
    mask = np.uint64((1 << (16 * len(repeated)).bit_length()) - 1)
    bitmap = np.zeros(int(mask) + 1, dtype=bool)
    bitmap[(repeated & mask).astype(np.intp)] = True
    maybe = np.flatnonzero(bitmap[(keys & mask).astype(np.intp)])
    candidates = keys[maybe]
    shared[maybe] = repeated[np.minimum(np.searchsorted(repeated, candidates), len(repeated) - 1)] == candidates
    return shared


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
        return BucketPairs([], _NO_PAIRS, _NO_PAIRS, 0)
    keys, members, times = np.concatenate(keys), np.concatenate(members), np.concatenate(times)
    collided = _shared(keys)
    keys, members = keys[collided], members[collided]
    if not len(members):
        return BucketPairs([], _NO_PAIRS, _NO_PAIRS, 0)
    # One number per story sharing a bucket (a record read twice has one uid), in
    # uid order; only they are numbered: every batch brings all its stories' uids.
    # Numbered by Python's sort of the distinct uids: NumPy's of an object array compares far slower.
    numbered, member_of = np.unique(members, return_inverse=True)
    member_uids = [uids[m] for m in numbered.tolist()]
    names = sorted(set(member_uids))
    number = {uid: i for i, uid in enumerate(names)}
    story = np.fromiter(map(number.__getitem__, member_uids), dtype=np.int64,
                        count=len(member_uids))[member_of.reshape(-1)]
    # Bucket order is (time, uid): the same whatever the batches or partitions.
    order = np.lexsort((story, times[members], keys))
    keys, members, story = keys[order], members[order], story[order]
    member_times = times[members]
    # The whole policy (``compared_members``) at once, over every bucket: for the
    # member at j, ``first`` is the earliest member of its bucket within the window.
    n = len(members)
    new_bucket = np.r_[True, keys[1:] != keys[:-1]]
    bucket_start = np.maximum.accumulate(np.where(new_bucket, np.arange(n), 0))
    bucket_rank = np.cumsum(new_bucket).astype(np.int64)
    spread = int(member_times.max() - member_times.min()) + settings.window_seconds + 1
    position = bucket_rank * spread + (member_times - member_times.min())
    first = np.maximum(np.searchsorted(position, position - settings.window_seconds, side="left"), bucket_start)
    j = np.arange(n)
    earliest, latest = settings.compare_earliest, settings.compare_latest
    early = first[:, None] + np.arange(earliest)[None, :]
    late = j[:, None] - 1 - np.arange(latest)[None, :]
    early_ok = early < j[:, None]
    late_ok = late >= (first + earliest)[:, None]
    a = np.concatenate([np.broadcast_to(j[:, None], early.shape)[early_ok],
                        np.broadcast_to(j[:, None], late.shape)[late_ok]])
    b = np.concatenate([early[early_ok], late[late_ok]])
    dropped = int(np.maximum(j - first - earliest - latest, 0).sum())
    sa, sb = story[a].astype(np.uint64), story[b].astype(np.uint64)
    distinct = sa != sb
    low, high = np.minimum(sa, sb)[distinct], np.maximum(sa, sb)[distinct]
    codes = _distinct(np.sort(low << np.uint64(32) | high))
    return BucketPairs(names, (codes >> np.uint64(32)).astype(np.int64),
                       (codes & np.uint64(0xFFFFFFFF)).astype(np.int64), dropped)
