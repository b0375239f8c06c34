"""Dataset statistics with polars, gathered shard by shard without the image bytes.

Each shard is read (its small columns only), summarised with polars, and folded into running
totals and fixed-edge histograms (report/hist.py), so memory stays flat however many shards the
output holds. The result is plain JSON: the plots, the HTML report and the dataset card are all
drawn from it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import polars as pl

from finecap import storage
from finecap.dataset import committed_shards, iter_committed
from finecap.report import hist
from finecap.report.hist import Numeric

COLUMNS = ["width", "height", "captions", "regions", "quality"]
ORIGINS = ("detector", "ocr")  # always reported, even when a build made none of them
QUALITY_EDGES = {"blur": hist.BLUR_EDGES, "brightness": hist.UNIT_EDGES,
                 "clipped": hist.UNIT_EDGES, "saturation": hist.UNIT_EDGES}
TOP_CATEGORIES = 25


class _Totals:
    """Running totals over the shards seen so far."""

    def __init__(self) -> None:
        self.rows = 0
        self.rejects: Counter = Counter()
        self.tokens: dict[str, Numeric] = defaultdict(lambda: Numeric(hist.TOKEN_EDGES))
        self.prompts: dict[str, Counter] = defaultdict(Counter)
        self.captions_per_image = Numeric(hist.COUNT_EDGES)
        self.regions_per_image = Numeric(hist.COUNT_EDGES)
        self.per_origin: dict[str, Numeric] = defaultdict(lambda: Numeric(hist.COUNT_EDGES))
        self.area: dict[str, Numeric] = defaultdict(lambda: Numeric(hist.AREA_EDGES))
        self.categories: dict[str, Counter] = defaultdict(Counter)
        self.region_captions: Counter = Counter()
        self.sizes = {"width": Numeric(hist.SIDE_EDGES), "height": Numeric(hist.SIDE_EDGES),
                      "megapixels": Numeric(hist.MEGAPIXEL_EDGES)}
        self.quality = {name: Numeric(edges) for name, edges in QUALITY_EDGES.items()}

    def add_shard(self, data: pl.DataFrame, rejects: pl.DataFrame) -> None:
        self.rows += data.height
        for row in rejects.group_by(["stage", "reason"]).len().iter_rows(named=True):
            self.rejects[(row["stage"], row["reason"])] += row["len"]
        if not data.height:
            return
        self._add_captions(data)
        self._add_regions(data)
        self.sizes["width"].add(data["width"].to_numpy())
        self.sizes["height"].add(data["height"].to_numpy())
        self.sizes["megapixels"].add((data["width"].cast(pl.Float64) * data["height"] / 1e6).to_numpy())
        quality = data.select(pl.col("quality").struct.unnest())
        for name, summary in self.quality.items():
            if name in quality.columns:
                summary.add(quality[name].drop_nulls().cast(pl.Float64).to_numpy())

    def _add_captions(self, data: pl.DataFrame) -> None:
        self.captions_per_image.add(data["captions"].list.len().to_numpy())
        captions = data.select(pl.col("captions").explode()).unnest("captions").drop_nulls("model")
        for (model,), part in captions.group_by("model"):
            self.tokens[model].add(part["num_tokens"].to_numpy())
            self.prompts[model].update(part["prompt_id"].to_list())

    def _add_regions(self, data: pl.DataFrame) -> None:
        self.regions_per_image.add(data["regions"].list.len().to_numpy())
        regions = data.select(pl.col("regions").explode()).unnest("regions").drop_nulls("origin")
        # Only origins present here: an image's zero for any other origin is added by to_dict.
        for origin in sorted(set(regions["origin"].unique().to_list())):
            per_image = data.select(
                pl.col("regions").list.eval((pl.element().struct.field("origin") == origin).cast(pl.Int32)).list.sum()
            )
            self.per_origin[origin].add(per_image.to_series().to_numpy())
        if not regions.height:
            return
        corner = [pl.col("bbox").list.get(i, null_on_oob=True) for i in range(4)]  # a bad box: no area
        regions = regions.with_columns(area=(corner[2] - corner[0]) * (corner[3] - corner[1]))
        for (origin,), part in regions.group_by("origin"):
            self.area[origin].add(part["area"].cast(pl.Float64).to_numpy())
        for row in regions.group_by(["origin", "category"]).len().iter_rows(named=True):
            self.categories[row["origin"]][row["category"] or "(none)"] += row["len"]
        for row in regions.group_by("caption_model").len().iter_rows(named=True):
            self.region_captions[row["caption_model"] or "(none)"] += row["len"]

    def to_dict(self) -> dict:
        regions_total = self.regions_per_image.total
        by_origin = {}
        for origin in sorted(set(ORIGINS) | set(self.per_origin)):
            summary = self.per_origin[origin]
            summary.add_repeated(0, self.rows - summary.count)  # images without this origin
            with_any = summary.count - int(summary.counts[0])
            by_origin[origin] = {
                "regions": int(summary.total),
                "images_with": with_any,
                "per_image": summary.to_dict(),
                "area": self.area[origin].to_dict(),
            }
        ocr = by_origin.get("ocr", {"regions": 0, "images_with": 0})
        return {
            "rows": self.rows,
            "rejects": sum(self.rejects.values()),
            "rejects_by_reason": {f"{s}/{r}": n for (s, r), n in sorted(self.rejects.items())},
            "rejects_by_stage": _nested(self.rejects),
            "captions": {model: _caption_entry(n, self.prompts[model]) for model, n in sorted(self.tokens.items())},
            "captions_per_image": self.captions_per_image.to_dict(),
            "regions": {
                "total": int(regions_total),
                "per_image": self.regions_per_image.to_dict(),
                "by_origin": by_origin,
                "captioned_by": dict(self.region_captions.most_common()),
            },
            "top_categories": {o: [[c, n] for c, n in self.categories[o].most_common(TOP_CATEGORIES)]
                               for o in sorted(self.categories)},
            "distinct_categories": {o: len(c) for o, c in sorted(self.categories.items())},
            "ocr": {
                "images_with_text": ocr["images_with"],
                "image_share": round(ocr["images_with"] / self.rows, 4) if self.rows else 0.0,
                "region_share": round(ocr["regions"] / regions_total, 4) if regions_total else 0.0,
            },
            "image_size": {name: s.to_dict() for name, s in self.sizes.items()},
            "quality": {name: s.to_dict() for name, s in self.quality.items()},
        }


def _caption_entry(tokens: Numeric, prompts: Counter) -> dict:
    summary = tokens.to_dict()
    return {
        "captions": summary["count"],
        "mean_tokens": summary.get("mean"),
        "min_tokens": summary.get("min"),
        "max_tokens": summary.get("max"),
        "tokens": summary.get("histogram"),
        "prompts": dict(sorted(prompts.items())),
    }


def _nested(counts: Counter) -> dict:
    out: dict[str, dict] = {}
    for (stage, reason), n in sorted(counts.items()):
        out.setdefault(stage, {})[reason] = n
    return out


def _manifest_facts(manifests: dict[str, dict]) -> dict:
    """Counts, stage times and provenance recorded by the shard manifests."""
    seconds: Counter = Counter()
    failures: Counter = Counter()  # regions kept without a caption, by why their generation failed
    models, prompts = {}, {}
    for manifest in manifests.values():
        seconds.update(manifest.get("stage_seconds", {}))
        failures.update(manifest.get("region_caption_failures", {}))
        for model in manifest.get("models", []):
            models[json.dumps(model, sort_keys=True)] = model
        prompts.update(manifest.get("prompts", {}))
    rows_in = sum(m.get("rows_in", 0) for m in manifests.values())
    return {
        "shards": len(manifests),
        "rows_in": rows_in,
        "stage_seconds": {k: round(v, 3) for k, v in sorted(seconds.items())},
        "stage_seconds_per_row": {k: round(v / rows_in, 5) for k, v in sorted(seconds.items())} if rows_in else {},
        "region_caption_failures": dict(sorted(failures.items())),
        "provenance": {
            "config_hashes": sorted({m.get("config_hash") for m in manifests.values()} - {None}),
            "finecap_versions": sorted({m.get("finecap_version") for m in manifests.values()} - {None}),
            "schema_versions": sorted({m.get("schema_version") for m in manifests.values()} - {None}),
            "sources": sorted({m.get("source") for m in manifests.values()} - {None}),
            "models": sorted(models.values(), key=lambda m: json.dumps(m, sort_keys=True)),
            "prompts": dict(sorted(prompts.items())),
        },
    }


def collect_stats(output: str) -> dict:
    """Statistics of every committed shard under `output` (see the module doc)."""
    shards = committed_shards(output)
    totals = _Totals()
    data_bytes = 0
    for shard, data, rejects in iter_committed(output, COLUMNS, rejects=True, shards=shards):
        totals.add_shard(pl.from_arrow(data), pl.from_arrow(rejects))
        fs, path = storage.filesystem(shard.data_uri)
        data_bytes += fs.size(path)
    facts = _manifest_facts({s.shard_id: s.manifest for s in shards})
    return {"output": output, "shards": facts.pop("shards"), "data_bytes": data_bytes, **totals.to_dict(), **facts}


def write_stats(output: str, stats: dict) -> str:
    path = storage.join(output, "report", "stats.json")
    storage.write_bytes(path, json.dumps(stats, indent=2).encode())
    return path
