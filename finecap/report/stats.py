"""Dataset statistics with polars, read shard by shard without the image bytes."""

from __future__ import annotations

import io
import json

import polars as pl
import pyarrow.parquet as pq

from finecap import storage
from finecap.runtime.commit import committed_manifests, data_uri, rejects_uri

_COLUMNS = ["key", "width", "height", "captions", "regions"]


def collect_stats(output: str) -> dict:
    manifests = committed_manifests(output)
    frames, reject_frames = [], []
    for shard_id in sorted(manifests):
        data = pq.read_table(io.BytesIO(storage.read_bytes(data_uri(output, shard_id))), columns=_COLUMNS)
        frames.append(pl.from_arrow(data))
        reject_frames.append(pl.from_arrow(pq.read_table(io.BytesIO(storage.read_bytes(rejects_uri(output, shard_id))))))
    data = pl.concat(frames) if frames else pl.DataFrame()
    rejects = pl.concat(reject_frames) if reject_frames else pl.DataFrame()
    stats: dict = {
        "shards": len(manifests),
        "rows": data.height,
        "rejects": rejects.height,
        "rejects_by_reason": {},
        "captions": {},
        "regions_per_image": {},
        "image_size": {},
        "stage_seconds": {},
    }
    if rejects.height:
        grouped = rejects.group_by(["stage", "reason"]).len().sort(["stage", "reason"])
        stats["rejects_by_reason"] = {f"{r['stage']}/{r['reason']}": r["len"] for r in grouped.iter_rows(named=True)}
    if data.height:
        captions = data.select(pl.col("captions").explode()).unnest("captions").drop_nulls("model")
        if captions.height:
            per_model = captions.group_by("model").agg(
                pl.len().alias("captions"),
                pl.col("num_tokens").mean().alias("mean_tokens"),
                pl.col("num_tokens").min().alias("min_tokens"),
                pl.col("num_tokens").max().alias("max_tokens"),
            )
            stats["captions"] = {r.pop("model"): r for r in per_model.sort("model").iter_rows(named=True)}
        counts = data.select(pl.col("regions").list.len().alias("n"))["n"]
        stats["regions_per_image"] = {"mean": float(counts.mean()), "max": int(counts.max())}
        stats["image_size"] = {
            "mean_width": float(data["width"].mean()),
            "mean_height": float(data["height"].mean()),
        }
    for manifest in manifests.values():
        for stage, seconds in manifest.get("stage_seconds", {}).items():
            stats["stage_seconds"][stage] = round(stats["stage_seconds"].get(stage, 0.0) + seconds, 3)
    return stats


def write_report(output: str) -> str:
    stats = collect_stats(output)
    path = storage.join(output, "report", "stats.json")
    storage.write_bytes(path, json.dumps(stats, indent=2).encode())
    return path
