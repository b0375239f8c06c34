"""Busy rate of every stage in one local build: the measured default rates of `finecap plan`.

Why: the planner needs images/s per worker for each stage, and a build already records each
stage's busy seconds per shard (manifest `stage_seconds`: time inside the stage's call, spread
over the rows of each batch). One `finecap build` of pipelines/local.yaml (tiny models, every
stage on, dedup off) on the sample source gives them all; rate = input images / busy seconds,
so rows rejected earlier count as input and cost the stage nothing. Stages share this machine's
cores while they run, so each rate is what one worker managed under that contention.

    python benchmarks/stage_rates.py [--images 24]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="generated scenes (plus the bundled photos)")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    import pyarrow.parquet as pq

    from benchmarks.record import record
    from finecap.config import load_config
    from finecap.runtime.runner import run_build
    from finecap.samples.source import write_sample_source

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_sample_source(Path(tmp) / "src", n_scenes=args.images, seed=3)
        out = Path(tmp) / "out"
        config = load_config(REPO / "pipelines/local.yaml", ["dedup.enabled=false"],
                             **{"source.uri": str(folder), "output.uri": str(out)})
        started = time.perf_counter()
        summary = run_build(config, resume=False)
        wall = time.perf_counter() - started
        regions = pq.read_table(out / "data", columns=["regions"]).column("regions").to_pylist()
    stages = {name: {"busy_seconds": round(busy, 3), "images_per_s": round(summary.rows_in / busy, 3)}
              for name, busy in summary.stage_seconds.items() if busy > 0}
    figures = {"images": summary.rows_in, "rows_written": summary.rows_written,
               "rows_rejected": summary.rows_rejected, "wall_seconds": round(wall, 1),
               "regions_per_image": round(sum(len(r or []) for r in regions) / max(len(regions), 1), 2),
               "stages": stages, "load_average_1m": round(os.getloadavg()[0], 1)}
    print(json.dumps(figures, indent=2))
    slowest = min(stages, key=lambda s: stages[s]["images_per_s"])
    headline = (f"{summary.rows_in} images in {wall:.0f} s; slowest stage {slowest} "
                f"{stages[slowest]['images_per_s']:.2f} images/s busy; "
                + ", ".join(f"{k} {v['images_per_s']:.1f}" for k, v in sorted(stages.items())))
    print(headline)
    if not args.no_record:
        record("stage_rates", figures, headline, "every stage's busy rate, for `finecap plan`")


if __name__ == "__main__":
    main()
