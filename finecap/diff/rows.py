"""Row fates of two outputs compared by key: which keys each holds, and which changed fate.

A fate frame has one row per key an output accounted for (a kept row or a reject): `key`,
`shard` and `reason` ("stage/reason" for a reject, null for a kept row). It is built from the
key columns only, so it stays small next to the shards it describes.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from finecap.diff.tally import Tally

FATE_SCHEMA = {"key": pl.String, "shard": pl.String, "reason": pl.String}


def fate_frame(shard_id: str, data: pa.Table, rejects: pa.Table) -> pl.DataFrame:
    """The fates of one shard: its kept keys (`data.key`), then its rejects (`key, stage, reason`)."""
    kept = pl.from_arrow(data.select(["key"])).select(
        pl.col("key").cast(pl.String), shard=pl.lit(shard_id), reason=pl.lit(None, pl.String))
    rejected = pl.from_arrow(rejects.select(["key", "stage", "reason"]))
    rejected = rejected.select(
        pl.col("key").cast(pl.String), shard=pl.lit(shard_id),
        reason=pl.concat_str([pl.col("stage"), pl.col("reason")], separator="/"),
    )
    return pl.concat([kept, rejected]).cast(FATE_SCHEMA)


def concat_fates(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """All shards' fates; a key accounted for twice (validate reports it) counts once, first shard wins."""
    if not frames:
        return pl.DataFrame(schema=FATE_SCHEMA)
    return pl.concat(frames).unique(subset="key", keep="first", maintain_order=True)


def _joined(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    a = a.with_columns(in_a=pl.lit(True))
    b = b.with_columns(in_b=pl.lit(True))
    return a.join(b, on="key", how="full", coalesce=True, suffix="_b")


def compare_fates(a: pl.DataFrame, b: pl.DataFrame, examples: int) -> dict:
    """Keys only in A, only in B, in both; rejects side by side; keys whose fate changed."""
    joined = _joined(a, b)
    only_a, only_b = Tally(examples), Tally(examples)
    only_a.add("only_a", joined.filter(pl.col("in_b").is_null())["key"])
    only_b.add("only_b", joined.filter(pl.col("in_a").is_null())["key"])
    both = joined.filter(pl.col("in_a") & pl.col("in_b"))
    return {
        "keys": {"only_a": only_a.entry("only_a"), "only_b": only_b.entry("only_b"), "both": both.height},
        "rejects": _rejects_side_by_side(a, b),
        "fate_changed": _fate_changes(both, examples),
    }


def _rejects_side_by_side(a: pl.DataFrame, b: pl.DataFrame) -> dict:
    counts: dict[str, dict] = {}
    for side, frame in (("a", a), ("b", b)):
        for reason, n in frame.drop_nulls("reason").group_by("reason").len().iter_rows():
            counts.setdefault(reason, {"a": 0, "b": 0})[side] = n
    return dict(sorted(counts.items()))


def _fate_changes(both: pl.DataFrame, examples: int) -> dict:
    """Among keys both outputs hold: kept -> rejected (by B's reason), rejected -> kept (by A's
    reason), and rejected in both for different reasons ("A's -> B's")."""
    kept_a, kept_b = pl.col("reason").is_null(), pl.col("reason_b").is_null()
    newly_rejected, newly_kept, other_reason = Tally(examples), Tally(examples), Tally(examples)
    newly_rejected.add_groups(both.filter(kept_a & ~kept_b), "reason_b")
    newly_kept.add_groups(both.filter(~kept_a & kept_b), "reason")
    moved = both.filter(~kept_a & ~kept_b & (pl.col("reason") != pl.col("reason_b")))
    other_reason.add_groups(moved.with_columns(change=pl.format("{} -> {}", "reason", "reason_b")), "change")
    return {
        "kept_to_rejected": newly_rejected.to_dict(),
        "rejected_to_kept": newly_kept.to_dict(),
        "reason_changed": other_reason.to_dict(),
    }


def kept_pairs(a: pl.DataFrame, b: pl.DataFrame) -> dict[str, list[str]]:
    """For each shard of A, the shards of B that hold its rows kept in both (usually one, same id)."""
    both = a.filter(pl.col("reason").is_null()).join(
        b.filter(pl.col("reason").is_null()), on="key", how="inner", suffix="_b")
    pairs: dict[str, list[str]] = {}
    for shard_a, shard_b in both.select("shard", "shard_b").unique().sort(["shard", "shard_b"]).iter_rows():
        pairs.setdefault(shard_a, []).append(shard_b)
    return pairs
