"""Duplicate decisions as pure functions of rows: the same rows give the same losers, in any order.

Every image has a rank: more pixels first, then the smaller key. Within a group of duplicates
the best-ranked image stays and each other one becomes a loser naming the image it duplicates:
  - exact: same decoded pixels (sha256), the loser names the best of its sha256 group;
  - identical perceptual hash: the loser names the best of its phash group (distance 0);
  - near: a phash group's best (a "representative") loses to any better-ranked representative
    within the threshold; it names the closest one (then the best-ranked).
Near losers are decided pair by pair, so in a chain A ~ B ~ C (A best) both B and C go even if
C is far from A: each is within the threshold of a better image. This needs no global order of
processing, which is what lets buckets be decided in parallel.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from finecap.dedup.hashes import hamming, phash_ints, table_masks

SIGNATURES = pa.schema([("key", pa.string()), ("shard", pa.string()), ("sha256", pa.string()),
                        ("phash", pa.string()), ("pixels", pa.int64())])
CANDIDATES = pa.schema([("table", pa.int32()), ("value", pa.uint64()), ("phash", pa.uint64()),
                        ("pixels", pa.int64()), ("key", pa.string()), ("shard", pa.string())])
DECISIONS = pa.schema([("key", pa.string()), ("shard", pa.string()), ("reason", pa.string()),
                       ("dup_of", pa.string()), ("dup_pixels", pa.int64()), ("distance", pa.int32())])
EXACT, NEAR = "exact_duplicate", "near_duplicate"
_CHUNK = 1024  # bucket rows compared at once


def _sorted(table: pa.Table, keys: list[tuple[str, str]]) -> pa.Table:
    return table.take(pc.sort_indices(table, keys)) if table.num_rows else table


def decide_identical(sigs: pa.Table, exact: bool, near: bool) -> tuple[pa.Table, pa.Table]:
    """(losers, representatives) of a partition holding every row of its phash values."""
    rows = _sorted(sigs, [("phash", "ascending"), ("pixels", "descending"), ("key", "ascending")]).to_pylist()
    losers, reps = [], []
    start = 0
    while start < len(rows):
        end = start
        while end < len(rows) and rows[end]["phash"] == rows[start]["phash"]:
            end += 1
        group = rows[start:end]  # already in rank order
        best_by_sha: dict[str, dict] = {}
        survivors = []
        for row in group:
            first = best_by_sha.setdefault(row["sha256"], row)
            if exact and first is not row:
                losers.append(_decision(row, EXACT, first, 0))
            else:
                survivors.append(row)
        if near:
            for row in survivors[1:]:
                losers.append(_decision(row, NEAR, survivors[0], 0))
            if survivors:
                reps.append(survivors[0])
        start = end
    return (pa.Table.from_pylist(losers, schema=DECISIONS),
            pa.Table.from_pylist(reps, schema=SIGNATURES) if reps else SIGNATURES.empty_table())


def _decision(row: dict, reason: str, winner: dict, distance: int) -> dict:
    return {"key": row["key"], "shard": row["shard"], "reason": reason, "dup_of": winner["key"],
            "dup_pixels": winner["pixels"], "distance": distance}


def candidates(reps: pa.Table, blocks: int, threshold: int) -> pa.Table:
    """One row per (representative, table): the bucket it joins in that table."""
    if not reps.num_rows:
        return CANDIDATES.empty_table()
    hashes = phash_ints(reps.column("phash").to_pylist())
    parts = []
    for index, mask in enumerate(table_masks(blocks, threshold)):
        parts.append(pa.table({
            "table": pa.array(np.full(len(hashes), index, dtype=np.int32)),
            "value": pa.array(hashes & np.uint64(mask)),
            "phash": pa.array(hashes),
            "pixels": reps.column("pixels"),
            "key": reps.column("key"),
            "shard": reps.column("shard"),
        }, schema=CANDIDATES))
    return pa.concat_tables(parts)


def near_pairs(cands: pa.Table, threshold: int) -> pa.Table:
    """Losers of every pair within `threshold` bits that shares a bucket (a loser may repeat).

    Rows are sorted by bucket, then rank, so in a close pair (i < j) row j loses to row i. Small
    buckets (almost all) are compared in bulk, one offset at a time; crowded ones in chunks.
    """
    if cands.num_rows < 2:
        return DECISIONS.empty_table()
    cands = _sorted(cands, [("table", "ascending"), ("value", "ascending"), ("pixels", "descending"),
                            ("key", "ascending")])
    table, value = cands.column("table").to_numpy(), cands.column("value").to_numpy()
    new_bucket = np.r_[True, (table[1:] != table[:-1]) | (value[1:] != value[:-1])]
    bucket = np.cumsum(new_bucket)
    starts = np.flatnonzero(new_bucket)
    sizes = np.diff(np.r_[starts, len(value)])
    hashes = cands.column("phash").to_numpy()
    winners, losers = [], []
    small = np.repeat(sizes <= _CHUNK, sizes)
    for offset in range(1, int(min(sizes.max(), _CHUNK))):
        i = np.flatnonzero((bucket[:-offset] == bucket[offset:]) & small[:-offset])
        close = i[hamming(hashes[i], hashes[i + offset]) <= threshold]
        winners.append(close)
        losers.append(close + offset)
    for start, size in zip(starts[sizes > _CHUNK], sizes[sizes > _CHUNK], strict=True):
        for chunk in range(0, size, _CHUNK):
            rows = np.arange(start + chunk, start + min(size, chunk + _CHUNK))
            near = hamming(hashes[rows][:, None], hashes[start : start + size][None, :]) <= threshold
            near &= np.arange(start, start + size)[None, :] > rows[:, None]
            a, b = np.nonzero(near)
            winners.append(rows[a])
            losers.append(start + b)
    winner = np.concatenate(winners) if winners else np.array([], dtype=np.int64)
    loser = np.concatenate(losers) if losers else np.array([], dtype=np.int64)
    return pa.table({
        "key": cands.column("key").take(loser),
        "shard": cands.column("shard").take(loser),
        "reason": pa.array([NEAR] * len(loser), pa.string()),
        "dup_of": cands.column("key").take(winner),
        "dup_pixels": cands.column("pixels").take(winner),
        "distance": pa.array(hamming(hashes[winner], hashes[loser]).astype(np.int32)),
    }, schema=DECISIONS)


def resolve(decisions: pa.Table) -> dict[str, dict]:
    """One decision per loser: exact before near, then the closest, then the best-ranked winner."""
    chosen: dict[str, dict] = {}
    for row in decisions.to_pylist():
        order = (row["reason"] != EXACT, row["distance"], -row["dup_pixels"], row["dup_of"])
        kept = chosen.get(row["key"])
        if kept is None or order < kept["_order"]:
            chosen[row["key"]] = {**row, "_order": order}
    return {k: {n: v for n, v in d.items() if n != "_order"} for k, d in chosen.items()}


def detail(decision: dict) -> str:
    if decision["reason"] == EXACT:
        return f"exact duplicate of {decision['dup_of']} (same pixels)"
    return f"near duplicate of {decision['dup_of']} (perceptual hash distance {decision['distance']})"
