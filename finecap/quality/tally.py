"""Distinct 64-bit hashes over a stream and their counts, in memory that grows with the distinct values.

Dataset-level passes (duplicate captions, distinct n-grams) see every caption once, shard by
shard, but only need how often each value occurs. A Python set or Counter of ints costs ~90 bytes
an entry; here values are numpy uint64 (8 bytes, plus 8 for the count and 4 for the first shard),
and added values wait in a pending list until it holds as many as the compacted arrays, then are
merged with one sort: each value is sorted O(log n) times overall, and memory stays within about
twice the distinct values however many shards there are.
"""

from __future__ import annotations

import hashlib

import numpy as np

_MIN_PENDING = 1 << 16  # values held before the first merge: tiny outputs never sort twice
# _SORT: merges sort with kind="stable" (timsort for uint64), which takes the already sorted
# distinct values as one run: signal_summary over 400k random 30-word captions (20 shards) took
# 15 s this way, 27 s with np.unique's quicksort (2 shared cores).


def text_hash(text: str) -> int:
    """A stable 64-bit hash of a text (blake2b): the same on every run and machine."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class HashTally:
    """How often each uint64 value was added, and the smallest `origin` (e.g. shard index) it came with."""

    def __init__(self) -> None:
        self._values = np.empty(0, np.uint64)
        self._counts = np.empty(0, np.int64)
        self._origins = np.empty(0, np.int32)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, values, origin: int = 0) -> None:
        values = np.asarray(values, dtype=np.uint64)
        if not values.size:
            return
        self._pending.append((values, np.full(values.size, origin, np.int32)))
        self._pending_size += values.size
        if self._pending_size >= max(_MIN_PENDING, self._values.size):
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        values = np.concatenate([self._values, *(v for v, _ in self._pending)])
        counts = np.concatenate([self._counts, np.ones(self._pending_size, np.int64)])
        origins = np.concatenate([self._origins, *(o for _, o in self._pending)])
        order = np.argsort(values, kind="stable")  # see _SORT
        values, counts, origins = values[order], counts[order], origins[order]
        starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))  # pending is never empty here
        self._values = values[starts]
        self._counts = np.add.reduceat(counts, starts)
        self._origins = np.minimum.reduceat(origins, starts)
        self._pending, self._pending_size = [], 0

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distinct values sorted, how often each was added, the smallest origin of each)."""
        self._merge()
        return self._values, self._counts, self._origins

    def distinct(self) -> int:
        return int(self.result()[0].size)

    def total(self) -> int:
        return int(self.result()[1].sum())


class DistinctHashes:
    """How many distinct uint64 values were added (8 bytes each: no counts, no origins)."""

    def __init__(self) -> None:
        self._values = np.empty(0, np.uint64)
        self._pending: list[np.ndarray] = []
        self._pending_size = 0

    def add(self, values) -> None:
        values = np.asarray(values, dtype=np.uint64)
        self._pending.append(values)
        self._pending_size += values.size
        if self._pending_size >= max(_MIN_PENDING, self._values.size):
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            values = np.sort(np.concatenate([self._values, *self._pending]), kind="stable")  # see _SORT
            self._values = values[np.concatenate([[True], values[1:] != values[:-1]])]
            self._pending, self._pending_size = [], 0

    def distinct(self) -> int:
        self._merge()
        return int(self._values.size)
