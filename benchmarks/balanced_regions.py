"""Region captions of a balanced build (`balance.enabled`) vs captioning every region, one run.

Why (issue 17, point 1): the paper balances categories before it captions regions, so the region
stage's compute goes only to the regions the balanced set keeps. This builds one sample source
twice with pipelines/local.yaml (dedup and quality off, OCR regions taking their own text in
both): once as it is, once with `balance.enabled=true balance.cap=CAP balance.keep_below=0`, and
counts from the committed shards the detector regions that got a VLM caption, per category.

Figures: VLM region captions in each build and their ratio; the most captioned in one category
(the balanced build must stay <= CAP: the run fails otherwise); the regions stage's busy seconds
of each (manifests' stage_seconds; the balanced build's pass 2 is the one that runs the regions)
and wall seconds of the whole build (the balanced one pays a second pass's start-up, which does
not shrink with the data).

    python benchmarks/balanced_regions.py [--scenes 40] [--cap 3]
    python benchmarks/balanced_regions.py --scenes 4 --cap 2       # quick (make bench)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

OVERRIDES = ["dedup.enabled=false", "quality.enabled=false", "regions.caption_ocr_regions=false"]


def build(source: Path, out: Path, extra: list[str]) -> dict:
    """One `finecap build` as the command runs it; wall seconds and the regions' busy seconds."""
    from finecap.config import load_config
    from finecap.dataset.layout import committed_manifests
    from finecap.runtime.runner import run_build

    config = load_config(REPO / "pipelines/local.yaml", OVERRIDES + extra,
                         **{"source.uri": str(source), "output.uri": str(out)})
    started = time.perf_counter()
    run_build(config)
    wall = time.perf_counter() - started
    regions_busy = sum(m["stage_seconds"].get("regions", 0.0) for m in committed_manifests(str(out)).values())
    return {"wall_seconds": round(wall, 1), "regions_busy_seconds": round(regions_busy, 2),
            "vlm_captions_by_category": captions_by_category(out)}


def captions_by_category(out: Path) -> dict[str, int]:
    """Detector regions with a VLM caption, per category, over the committed shards."""
    from finecap.dataset import committed_shards, read_data

    counts: Counter = Counter()
    for shard in committed_shards(str(out)):
        for regions in read_data(shard, ["regions"]).column("regions").to_pylist():
            counts.update(r["category"] for r in regions or [] if r["origin"] == "detector" and r["caption"])
    return dict(counts.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40, help="generated scenes (no photos)")
    parser.add_argument("--cap", type=int, default=3, help="balance.cap of the balanced build")
    parser.add_argument("--note", default="", help="appended to the recorded headline")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    from benchmarks.record import record
    from finecap.samples.source import write_sample_source

    with tempfile.TemporaryDirectory(prefix="fc-balanced-") as tmp:
        source = write_sample_source(Path(tmp) / "src", n_scenes=args.scenes, seed=5, include_photos=False)
        every = build(source, Path(tmp) / "every", [])
        balanced = build(source, Path(tmp) / "balanced",
                         ["balance.enabled=true", f"balance.cap={args.cap}", "balance.keep_below=0"])
    n_every = sum(every["vlm_captions_by_category"].values())
    n_balanced = sum(balanced["vlm_captions_by_category"].values())
    most = max(balanced["vlm_captions_by_category"].values(), default=0)
    if most > args.cap:
        sys.exit(f"balanced build captioned {most} regions of one category, above the cap {args.cap}")
    print(json.dumps({"every_region": every, "balanced": balanced}, indent=2))
    headline = (f"{n_balanced} VLM region captions balanced (cap {args.cap}, at most {most} per category) vs "
                f"{n_every} for every region: {n_every / max(n_balanced, 1):.2f}x fewer; regions busy "
                f"{balanced['regions_busy_seconds']:.1f} s vs {every['regions_busy_seconds']:.1f} s; wall "
                f"{balanced['wall_seconds']:.0f} s (two passes) vs {every['wall_seconds']:.0f} s "
                f"({args.scenes} scenes, {len(every['vlm_captions_by_category'])} categories)")
    print(headline)
    if args.note:
        headline += f"; {args.note}"
    if not args.no_record:
        figures = {"scenes": args.scenes, "cap": args.cap, "every_region": every, "balanced": balanced}
        record("balanced_regions", figures, headline, f"a balanced build captions <= cap ({args.cap}) regions "
               "per category (checked: the run fails otherwise)")


if __name__ == "__main__":
    main()
