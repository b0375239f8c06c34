"""`finecap balance OUTPUT_URI`: class-balanced selection of regions over a whole output.

As in the paper, frequent categories are capped (at `--cap` instances) and rarer ones are kept
whole: a category is capped only when it has more than `--cap` instances and at least
`--keep-below` (the paper's 100k and 1k). With keep_below above the cap, categories between the
two are kept whole too: only clearly frequent categories are cut. OCR regions are exempt unless `--origin ocr` is given: they all
sit in one category `text`, and their caption is their OCR text, so capping them saves no model
call and drops text lines. A balanced build (finecap/runtime/balanced_build.py) writes the same
selection between its two passes and captions only the selected regions.

The selection is a list of (key, region index) pairs, not a copy of the data: image bytes are
never read or rewritten, and the trainer joins the selection with the shards it streams
(finecap/balance_selection.py reads it).
Which instances of a capped category survive is decided by a hash of (seed, key, region index),
so the same output and arguments always give the same selection, whatever the shard order.

Two passes over the `key` and `regions` columns of the committed shards (Parquet column
projection, so the image column is never read): the first counts categories (polars), the
second keeps every instance of an uncapped category and, for a capped one, only candidates
whose hash falls under a threshold a little above cap/count; the `cap` smallest hashes among
them are the selection (a category left short is rescanned with a wider threshold). Memory
grows with the selection, not with the output.

Written under `--out` (default OUTPUT_URI/balance), summary last:
    selection/part-000123.parquet  key (string), region (int32, index into that row's `regions`),
                                   category (string), origin (string); one file per data shard
                                   with selected regions, sorted by key and region
    categories.parquet             category, instances, selected; sorted by instances, descending
    summary.json                   arguments, totals, the input's config hashes, `inputs` (per shard,
                                   the fingerprint of what the regions read: detect and ocr) and
                                   `digest`, a hash of arguments and inputs: the selection is a pure
                                   function of them, so equal digests mean equal selections
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from finecap import __version__, storage
from finecap.dataset import CommittedShard, committed_shards, read_data
from finecap.errors import UserError


class BalanceError(UserError, ValueError):
    """A problem with the arguments or the output; the message says which."""


MARGIN = 1.2  # candidates kept per capped category, relative to the cap, on the first try
_MASK = (1 << 64) - 1


@dataclass
class BalanceSummary:
    output: str
    selection: str
    cap: int
    seed: int
    origins: list[str]
    keep_below: int = 0
    shards: int = 0
    images: int = 0  # data rows of the output (the planner's regions per image)
    regions: int = 0  # regions of the chosen origins that have a category
    selected: int = 0
    categories: int = 0
    capped_categories: int = 0
    selected_by_origin: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    digest: str = ""
    config_hashes: list[str] = field(default_factory=list)
    finecap_version: str = __version__

    def line(self) -> str:
        return (f"{self.regions} regions in {self.categories} categories -> {self.selected} selected "
                f"({self.capped_categories} categories capped at {self.cap}); selection in {self.selection}")


def region_table(shard: CommittedShard, origins: list[str]) -> pl.DataFrame:
    """One row per region of the shard: key, region (index), category, origin (not image bytes)."""
    frame = pl.from_arrow(read_data(shard, ["key", "regions"]))
    return (
        frame.with_columns(region=pl.int_ranges(0, pl.col("regions").list.len(), dtype=pl.Int32))
        .explode(["regions", "region"])
        .filter(pl.col("regions").is_not_null())
        .select("key", "region", pl.col("regions").struct.field("category"),
                pl.col("regions").struct.field("origin"))
        .filter(pl.col("category").is_not_null() & pl.col("origin").is_in(origins))
    )


def ranks(keys: pl.Series, regions: pl.Series, seed: int) -> np.ndarray:
    """A uniform 64-bit hash of (seed, key, region) per row, stable across runs and platforms."""
    unique = keys.unique()
    per_key = {k: int.from_bytes(hashlib.blake2b(f"{seed}\0{k}".encode(), digest_size=8).digest(), "big")
               for k in unique.to_list()}
    base = np.fromiter((per_key[k] for k in keys.to_list()), dtype=np.uint64, count=len(keys))
    return _splitmix(base ^ (regions.to_numpy().astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


# What the regions stage reads: a selection stays valid while these stages' fingerprints do.
REGION_INPUTS = ("detect", "ocr")


def balance(output: str, cap: int, seed: int = 0, origins: list[str] | None = None,
            out: str | None = None, keep_below: int = 0) -> BalanceSummary:
    if cap < 1:
        raise BalanceError(f"--cap must be >= 1, got {cap}")
    if keep_below < 0:
        raise BalanceError(f"--keep-below must be >= 0, got {keep_below}")
    origins = sorted(origins or ["detector"])
    shards = committed_shards(output)
    if not shards:
        raise BalanceError(f"no committed shards under {output} (no _manifest/*.json)")
    out = out or storage.join(output, "balance")
    summary = BalanceSummary(output, out, cap, seed, origins, keep_below, shards=len(shards),
                             images=sum(s.manifest.get("rows_written", 0) for s in shards),
                             inputs={s.shard_id: region_inputs(s.manifest) for s in shards},
                             config_hashes=sorted({s.manifest["config_hash"] for s in shards}))
    summary.digest = selection_digest(cap, keep_below, seed, origins, summary.inputs)
    counts = _count(shards, origins)
    capped = {c: n for c, n in zip(counts["category"], counts["instances"], strict=True)
              if n > cap and n >= keep_below}
    selection = _select(shards, origins, cap, seed, capped)
    per_category = selection.group_by("category").agg(pl.len().alias("selected"))
    categories = (counts.join(per_category, on="category", how="left")
                  .with_columns(pl.col("selected").fill_null(0).cast(pl.Int64))
                  .sort(["instances", "category"], descending=[True, False]))
    summary.regions, summary.selected = int(counts["instances"].sum() or 0), selection.height
    summary.categories, summary.capped_categories = counts.height, len(capped)
    by_origin = selection.group_by("origin").agg(pl.len().alias("n"))
    summary.selected_by_origin = {o: int(n) for o, n in sorted(zip(by_origin["origin"], by_origin["n"], strict=True))}
    storage.remove(storage.join(out, "summary.json"))  # a rerun is complete again only when rewritten
    storage.remove(storage.join(out, "selection"), recursive=True)
    for shard, part in selection.partition_by("shard", as_dict=True, maintain_order=True).items():
        _write(storage.join(out, "selection", f"{shard[0]}.parquet"), part.drop("shard", "rank").sort(["key", "region"]))
    _write(storage.join(out, "categories.parquet"), categories)
    storage.write_bytes(storage.join(out, "summary.json"), json.dumps(asdict(summary), indent=2).encode())
    return summary


def region_inputs(manifest: dict) -> str:
    """The fingerprint of what a shard's regions came from (its detect and ocr fingerprints)."""
    prints = manifest.get("fingerprints") or {}
    text = json.dumps([prints.get(stage) for stage in REGION_INPUTS])
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def selection_digest(cap: int, keep_below: int, seed: int, origins: list[str], inputs: dict[str, str]) -> str:
    text = json.dumps({"cap": cap, "keep_below": keep_below, "seed": seed, "origins": sorted(origins),
                       "inputs": dict(sorted(inputs.items()))}, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _count(shards: list[CommittedShard], origins: list[str]) -> pl.DataFrame:
    parts = [region_table(s, origins).group_by("category").agg(pl.len().alias("n")) for s in shards]
    return (pl.concat(parts).group_by("category").agg(pl.col("n").sum().cast(pl.Int64).alias("instances"))
            .sort("category"))


def _select(shards: list[CommittedShard], origins: list[str], cap: int, seed: int,
            capped: dict[str, int]) -> pl.DataFrame:
    """Every instance of an uncapped category; the `cap` lowest-ranked of each capped one."""
    margin = {c: MARGIN for c in capped}
    kept, candidates = [], {}
    todo = set(capped)
    first = True
    while first or todo:
        thresholds = {c: min(1.0, margin[c] * cap / n + 16 / n) for c, n in capped.items() if c in todo}
        limits = pl.DataFrame({"category": list(thresholds), "limit": [_limit(p) for p in thresholds.values()]},
                              schema={"category": pl.String, "limit": pl.UInt64})
        found = []
        for shard in shards:
            regions = region_table(shard, origins).with_columns(shard=pl.lit(shard.shard_id))
            regions = regions.with_columns(pl.Series("rank", ranks(regions["key"], regions["region"], seed),
                                                     dtype=pl.UInt64))
            if first:
                kept.append(regions.filter(~pl.col("category").is_in(list(capped))))
            found.append(regions.join(limits, on="category").filter(pl.col("rank") <= pl.col("limit")).drop("limit"))
        first = False
        for (category,), part in pl.concat(found).partition_by("category", as_dict=True).items():
            if part.height >= cap or thresholds[category] >= 1.0:
                candidates[category] = part.sort(["rank", "key", "region"]).head(cap)
                todo.discard(category)
        for category in todo:
            margin[category] *= 2
    frames = kept + list(candidates.values())
    schema = {"key": pl.String, "region": pl.Int32, "category": pl.String, "origin": pl.String,
              "shard": pl.String, "rank": pl.UInt64}
    return pl.concat([f.select(list(schema)) for f in frames]) if frames else pl.DataFrame(schema=schema)


def _limit(share: float) -> int:
    return _MASK if share >= 1.0 else int(share * _MASK)


def _write(uri: str, frame: pl.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    storage.write_bytes(uri, buffer.getvalue())

