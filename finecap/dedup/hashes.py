"""Perceptual-hash arithmetic for near-duplicate search: Hamming distance and block tables.

Candidate pairs come from exact matches on parts of the hash, never from all pairs. Cut the
64 bits into `blocks` blocks; two hashes within `threshold` bits differ in at most `threshold`
blocks, so they agree exactly on some `blocks - threshold` of them (pigeonhole). One table per
choice of those blocks (C(blocks, threshold) tables) keys each hash by its bits in the chosen
blocks; every pair within the threshold meets in at least one table's bucket, and a bucket
holds few chance members when the key is long. This is the scheme Manku et al. (WWW 2007) used
for simhash near-duplicates at web scale.
"""

from __future__ import annotations

import hashlib
from functools import cache
from itertools import combinations

import numpy as np

BITS = 64


def phash_ints(hex_hashes: list[str]) -> np.ndarray:
    """16-hex-digit perceptual hashes as uint64."""
    return np.array([int(h, 16) for h in hex_hashes], dtype=np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


@cache
def table_masks(blocks: int, threshold: int) -> tuple[int, ...]:
    """One bit mask per table: the bits that must match exactly for a pair to be a candidate."""
    edges = [round(i * BITS / blocks) for i in range(blocks + 1)]
    block_masks = [((1 << (edges[i + 1] - edges[i])) - 1) << edges[i] for i in range(blocks)]
    return tuple(sum(block_masks[i] for i in chosen) for chosen in combinations(range(blocks), blocks - threshold))


def stable_partition(values: list[str], partitions: int) -> np.ndarray:
    """Partition index of each string, the same in every process (Python's hash() is salted)."""
    if partitions == 1:
        return np.zeros(len(values), dtype=np.int64)
    return np.array(
        [int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "big") % partitions for v in values],
        dtype=np.int64,
    )
