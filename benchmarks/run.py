"""Run every benchmark: `make bench` (quick sizes, nothing recorded) or `make bench FULL=1`.

Why a runner: each benchmark has its own flags, and a smoke run must use small sizes and never
overwrite the recorded figures (quick mode sets FINECAP_BENCH_NO_RECORD, which record.py
honours), while a full run reproduces the commands in RESULTS.md and records them. A benchmark
listed here but not written yet is skipped with a message; one that exists and fails makes the
run exit nonzero; a benchmark file not listed here is reported, so none is forgotten.

    python benchmarks/run.py [--full] [--only NAME ...] [--list]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# name (benchmarks/NAME.py) -> arguments of the quick and the full run. Add a line per benchmark.
BENCHMARKS: dict[str, dict[str, list[str]]] = {
    "balanced_regions": {"quick": ["--scenes", "4", "--cap", "2"], "full": []},
    "caption_stage": {"quick": ["--images", "12", "--max-tokens", "16"], "full": ["--in-process"]},
    "cpu_overhead": {"quick": ["--images", "32", "--floor-repeats", "2"], "full": []},
    "dedup_scale": {"quick": ["--rows", "20000"], "full": []},
    "detector_batch": {"quick": ["--images", "8", "--batches", "1", "4", "--repeats", "1"], "full": []},
    "fetch_rate": {"quick": ["--urls", "300", "--batch", "100"], "full": ["--urls", "2000"]},
    "filter_thresholds": {"quick": ["--views", "3"], "full": []},
    "finevit_vl_engine": {"quick": ["--images", "4", "--max-tokens", "8"], "full": []},
    "memory_scale": {"quick": ["--base", "16"], "full": ["--models", "--scales", "10", "20"]},
    "ocr_throughput": {"quick": ["--images", "8", "--chunk", "4"], "full": []},
    "phash_distances": {"quick": ["--scenes", "40"], "full": []},
    "rebuild": {"quick": ["--scenes", "3"], "full": []},
    "region_prefill": {"quick": ["--scenes", "2", "--turns", "1"], "full": ["--block-size", "32"]},
    "sink_write": {"quick": ["--rows", "1024", "--shard-rows", "512", "--repeats", "3"], "full": []},
    "stage_rates": {"quick": ["--images", "2"], "full": []},
    "train_data_wait": {"quick": ["--steps", "15", "--rows", "200"], "full": ["--steps", "60", "--rows", "600"]},
}
# gpu_rates writes a GPU node's rates file for `finecap plan` (docs/plan.md): not a CPU ratio.
NOT_BENCHMARKS = {"__init__", "record", "run", "gpu_rates"}


def unlisted() -> list[str]:
    """Benchmark scripts (files with a __main__ block) that BENCHMARKS does not know."""
    names = []
    for path in sorted(HERE.glob("*.py")):
        if path.stem not in BENCHMARKS and path.stem not in NOT_BENCHMARKS and "__main__" in path.read_text():
            names.append(path.stem)
    return names


def run(name: str, args: list[str], quick: bool) -> tuple[str, float]:
    script = HERE / f"{name}.py"
    if not script.exists():
        return f"skipped (benchmarks/{name}.py does not exist yet)", 0.0
    env = {**os.environ, **({"FINECAP_BENCH_NO_RECORD": "1"} if quick else {})}
    command = [sys.executable, str(script.relative_to(REPO)), *args]
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    code = subprocess.run(command, cwd=REPO, env=env).returncode
    seconds = time.perf_counter() - started
    return ("ok" if code == 0 else f"FAILED (exit {code})"), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the recorded sizes, results written")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--list", action="store_true", help="print the benchmarks and their arguments")
    args = parser.parse_args()
    mode = "full" if args.full else "quick"
    names = args.only or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    if args.list:
        for name in names:
            print(f"{name}: quick {BENCHMARKS[name]['quick']} full {BENCHMARKS[name]['full']}")
        return 0
    results = {name: run(name, BENCHMARKS[name][mode], quick=not args.full) for name in names}
    print(f"\n=== benchmarks ({mode}{'' if args.full else ', not recorded'})")
    for name, (status, seconds) in results.items():
        print(f"{name:<20} {seconds:7.1f} s  {status}")
    for name in unlisted():
        print(f"warning: benchmarks/{name}.py is not in benchmarks/run.py BENCHMARKS: not run")
    failed = [name for name, (status, _) in results.items() if status.startswith("FAILED")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
