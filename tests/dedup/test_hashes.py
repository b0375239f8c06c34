import subprocess
import sys
from math import comb

import numpy as np
import pytest

from finecap.dedup.hashes import hamming, phash_ints, stable_partition, table_masks


@pytest.mark.parametrize("blocks, threshold", [(8, 6), (6, 4), (7, 3), (4, 1), (10, 6)])
def test_tables_cover_every_pair_within_the_threshold(blocks, threshold):
    masks = table_masks(blocks, threshold)
    assert len(masks) == comb(blocks, threshold)
    assert all(bin(m).count("1") >= (blocks - threshold) * (64 // blocks) for m in masks)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        a = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
        flips = rng.choice(64, size=int(rng.integers(0, threshold + 1)), replace=False)
        b = a
        for bit in flips:
            b ^= 1 << int(bit)
        assert any((a & m) == (b & m) for m in masks), (hex(a), hex(b))


def test_hamming_and_parsing():
    a, b = phash_ints(["ffffffffffffffff", "0f0f0f0f0f0f0f0f"])
    assert hamming(np.array([a]), np.array([b]))[0] == 32
    assert hamming(np.array([a]), np.array([a]))[0] == 0


def test_partitions_are_the_same_in_every_process():
    values = ["part-000001", "a" * 64, "3:123456"]
    here = stable_partition(values, 7).tolist()
    code = ("from finecap.dedup.hashes import stable_partition; "
            f"print(stable_partition({values!r}, 7).tolist())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str(here)
    assert stable_partition(values, 1).tolist() == [0, 0, 0]
