import random

import pyarrow as pa

from finecap.dedup.decide import (
    EXACT,
    NEAR,
    SIGNATURES,
    candidates,
    decide_identical,
    near_pairs,
    resolve,
)


def _sigs(rows):
    return pa.Table.from_pylist([dict(zip(("key", "shard", "sha256", "phash", "pixels"), r, strict=True))
                                 for r in rows], schema=SIGNATURES)


def _flip(phash: str, *bits: int) -> str:
    value = int(phash, 16)
    for bit in bits:
        value ^= 1 << bit
    return f"{value:016x}"


H = "0123456789abcdef"
ROWS = [
    ("a", "s0", "x" * 64, H, 100),
    ("b", "s1", "x" * 64, H, 100),  # same pixels as a
    ("c", "s1", "y" * 64, H, 400),  # same phash, other pixels, bigger
    ("d", "s2", "z" * 64, "fedcba9876543210", 100),
]


def _decide(rows, exact=True, near=True, threshold=6):
    losers, reps = decide_identical(_sigs(rows), exact, near)
    pairs = near_pairs(candidates(reps, 8, threshold), threshold) if near else losers.schema.empty_table()
    return resolve(pa.concat_tables([losers, pairs])), reps


def test_exact_then_identical_phash_with_the_bigger_image_winning():
    decisions, reps = _decide(ROWS)
    assert decisions["b"]["reason"] == EXACT and decisions["b"]["dup_of"] == "a"
    assert decisions["a"]["reason"] == NEAR and decisions["a"]["dup_of"] == "c"  # c has 4x the pixels
    assert "c" not in decisions and "d" not in decisions
    assert sorted(reps.column("key").to_pylist()) == ["c", "d"]


def test_flags_switch_kinds_off():
    only_exact, _ = _decide(ROWS, near=False)
    assert set(only_exact) == {"b"} and only_exact["b"]["reason"] == EXACT
    only_near, _ = _decide(ROWS, exact=False)
    assert {k: d["reason"] for k, d in only_near.items()} == {"a": NEAR, "b": NEAR}


def test_near_pairs_within_the_threshold_only():
    rows = [
        ("base", "s0", "1" * 64, H, 100),
        ("close", "s0", "2" * 64, _flip(H, 0, 17, 40, 63), 100),  # 4 bits
        ("edge", "s1", "3" * 64, _flip(H, 1, 9, 20, 33, 47, 58), 50),  # 6 bits
        ("far", "s1", "4" * 64, _flip(H, *range(2, 64, 9)), 100),  # 7 bits
    ]
    decisions, _ = _decide(rows)
    assert set(decisions) == {"close", "edge"}
    assert decisions["close"] == {"key": "close", "shard": "s0", "reason": NEAR, "dup_of": "base",
                                  "dup_pixels": 100, "distance": 4}
    assert decisions["edge"]["dup_of"] in ("base", "close")
    assert decisions["edge"]["distance"] <= 6


def test_decisions_do_not_depend_on_input_order():
    rows = ROWS + [(f"n{i}", f"s{i % 3}", f"{i:064d}", _flip(H, i % 64, (i * 7) % 64), 100 + i % 3)
                   for i in range(40)]
    expected, _ = _decide(rows)
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert _decide(shuffled)[0] == expected


def test_a_chain_of_near_duplicates_keeps_only_its_best():
    chain = [("k0", "s", "0" * 64, H, 300)]
    chain.append(("k1", "s", "1" * 64, _flip(H, 1, 2, 3, 4), 200))
    chain.append(("k2", "s", "2" * 64, _flip(H, 1, 2, 3, 4, 5, 6, 7, 8), 100))  # 8 bits from k0, 4 from k1
    decisions, _ = _decide(chain)
    assert decisions["k1"]["dup_of"] == "k0" and decisions["k2"]["dup_of"] == "k1"


def test_near_pairs_match_brute_force_in_small_and_crowded_buckets():
    import numpy as np

    from finecap.dedup.decide import CANDIDATES

    rng = np.random.default_rng(3)
    n = 1300
    value = np.where(np.arange(n) < 1100, 0, rng.integers(1, 40, size=n)).astype(np.uint64)  # one bucket > 1024
    base = rng.integers(0, 2**62, size=8, dtype=np.uint64)
    hashes = base[rng.integers(0, 8, size=n)] ^ (np.uint64(1) << rng.integers(0, 64, size=n).astype(np.uint64))
    keys = [f"k{i:05d}" for i in range(n)]
    cands = pa.table({"table": pa.array(np.zeros(n, dtype=np.int32)), "value": pa.array(value),
                      "phash": pa.array(hashes), "pixels": pa.array(np.full(n, 10, dtype=np.int64)),
                      "key": keys, "shard": ["s"] * n}, schema=CANDIDATES)
    got = {(r["dup_of"], r["key"]) for r in near_pairs(cands, 3).to_pylist()}
    expected = set()
    for i in range(n):
        for j in range(i + 1, n):
            if value[i] == value[j] and bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 3:
                expected.add((keys[i], keys[j]))
    assert got == expected and len(expected) > 1000
