"""Dedup decisions on synthetic signatures: throughput per step, recall of planted duplicates.

N random images (random sha256 and 64-bit perceptual hashes) plus planted exact duplicates
(same sha256 and hash) and near duplicates (1 to `threshold` bits flipped), all in one partition
(what one reduce task holds). Reports rows/s of each step, and how many planted duplicates were
found and how many distinct images were wrongly removed.

    python benchmarks/dedup_scale.py [--rows 200000] [--planted 0.05]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from finecap.config import DedupConfig  # noqa: E402
from finecap.dedup.decide import SIGNATURES, candidates, decide_identical, near_pairs, resolve  # noqa: E402


def signatures(rows: int, planted: float, threshold: int, seed: int = 0) -> tuple[pa.Table, dict[str, str]]:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=rows,
                                                                                                dtype=np.uint64)
    keys = [f"k{i:09d}" for i in range(rows)]
    shas = [f"{i:064x}" for i in range(rows)]
    expected = {}
    extra_keys, extra_hashes, extra_shas = [], [], []
    for n, original in enumerate(rng.choice(rows, size=int(rows * planted), replace=False)):
        key = f"z{n:09d}"  # sorts after every original: the original wins the tie
        value = int(hashes[original])
        if n % 2 == 0:
            sha = shas[original]
        else:
            sha = f"f{n:063x}"
            for bit in rng.choice(64, size=int(rng.integers(1, threshold + 1)), replace=False):
                value ^= 1 << int(bit)
        extra_keys.append(key)
        extra_hashes.append(value)
        extra_shas.append(sha)
        expected[key] = keys[original]
    table = pa.table({
        "key": keys + extra_keys,
        "shard": ["part-000000"] * (rows + len(extra_keys)),
        "sha256": shas + extra_shas,
        "phash": [f"{int(h):016x}" for h in hashes] + [f"{h:016x}" for h in extra_hashes],
        "pixels": pa.array([640 * 480] * (rows + len(extra_keys)), pa.int64()),
    }, schema=SIGNATURES)
    return table, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--planted", type=float, default=0.05)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    cfg = DedupConfig()
    sigs, expected = signatures(args.rows, args.planted, cfg.near_threshold)
    seconds = {}
    started = time.perf_counter()
    losers, reps = decide_identical(sigs, cfg.exact, cfg.near)
    seconds["identical"] = time.perf_counter() - started
    started = time.perf_counter()
    cands = candidates(reps, cfg.near_blocks, cfg.near_threshold)
    seconds["candidates"] = time.perf_counter() - started
    started = time.perf_counter()
    pairs = near_pairs(cands, cfg.near_threshold)
    seconds["near_pairs"] = time.perf_counter() - started
    started = time.perf_counter()
    decisions = resolve(pa.concat_tables([losers, pairs]))
    seconds["resolve"] = time.perf_counter() - started
    found = sum(1 for k, orig in expected.items() if decisions.get(k, {}).get("dup_of") == orig)
    wrong = sum(1 for k in decisions if k not in expected)
    total = sigs.num_rows
    figures = {
        "rows": total,
        "planted_duplicates": len(expected),
        "found": found,
        "distinct_removed": wrong,
        "bucket_records": cands.num_rows,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "rows_per_second": round(total / sum(seconds.values())),
        "threshold": cfg.near_threshold,
        "blocks": cfg.near_blocks,
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    import json

    print(json.dumps(figures, indent=2))
    if not args.no_record:
        from benchmarks.record import record

        headline = (f"{found}/{len(expected)} planted duplicates found, {wrong} distinct removed; "
                    f"{figures['rows_per_second']} rows/s per reduce task ({total} rows)")
        record("dedup_scale", figures, headline, "every planted duplicate found, nothing distinct removed")


if __name__ == "__main__":
    main()
