"""Peak memory of a build per process role at 1x and 10x the input: does it grow with shards?

Why: DESIGN.md invariant 3 (bounded memory). A driver that keeps per-shard bookkeeping, or
workers that keep object references, grow with the input and fail on a billion rows long before
any model does.

Method: `finecap build` (pipelines/local.yaml, shard size 8) runs as a child process on N and
10N generated scenes (plus the 5 bundled photos; `--scales 10 20` adds a 20N run to see whether
what grew keeps growing); benchmarks/proctree.py samples the RSS of
the child and every descendant (Ray daemons, CPU workers, model actors) every 0.2 s. Per role:
the largest single process's peak RSS and the peak of the role's total. `--models` keeps
every model stage (the tiny random models: vLLM captioners, spaCy, Grounding DINO, PP-OCR);
without it the model stages are off, which leaves the parts that see every shard (driver
commit bookkeeping, read/prepare/write tasks, Ray Data) and runs in seconds. Goal: per-process
peaks of the driver, CPU workers and model actors within 15% from 1x to 10x.
Writes finecap/benchmark_results/memory_scale.png.

    python benchmarks/memory_scale.py --models                 # full: 24 and 240 scenes, all stages
    python benchmarks/memory_scale.py --models --scales 10 20  # the recorded run: also 480 scenes
    python benchmarks/memory_scale.py --base 16                # quick: 16 and 160 scenes, no models
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODEL_STAGES = ("caption", "phrases", "detect", "ocr", "regions")
GATED = ("driver", "cpu_worker", "model_actor")  # per-process peaks the goal is about
PLOT = REPO / "finecap" / "benchmark_results" / "memory_scale.png"


def run_build(source: Path, out: Path, models: bool, shard_size: int) -> dict:
    """One `finecap build` in a child process, its tree sampled; peak RSS per role in MiB."""
    from benchmarks.proctree import TreeSampler

    cmd = [sys.executable, "-m", "finecap.cli", "build", "--config", str(REPO / "pipelines/local.yaml"),
           "--input", str(source), "--output", str(out), "--no-resume",
           "--set", f"source.shard_size={shard_size}", "--set", "dedup.enabled=false"]
    if not models:
        for stage in MODEL_STAGES:
            cmd += ["--set", f"{stage}.enabled=false"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    started = time.perf_counter()
    log = (out.parent / f"{out.name}.log").open("w")
    child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    with TreeSampler(root=child.pid) as sampler:
        code = child.wait()
    log.close()
    if code:
        raise SystemExit(f"build failed ({code}); see {log.name}")
    peaks = sampler.peak_rss_by_role()
    peaks["all"] = {"total_mib": round(sum(r["total_mib"] for r in peaks.values()), 1)}
    cpu = {role: round(seconds, 2) for role, seconds in sampler.cpu_by_role().items()}
    actors = sorted((round(p.peak_rss / 2**20), round(p.peak_private / 2**20))
                    for p in sampler.procs.values() if p.role == "model_actor")
    return {"wall_seconds": round(time.perf_counter() - started, 1), "samples": sampler.samples,
            "cpu_seconds": cpu, "peak_rss": peaks, "model_actors_rss_private_mib": actors}


def growth(small: dict, large: dict) -> dict:
    """large / small per role, for the largest process and for the role's total."""
    out = {}
    for role, big in large["peak_rss"].items():
        base = small["peak_rss"].get(role)
        if base:
            keys = ("max_process_mib", "max_process_private_mib", "total_mib")
            out[role] = {k: round(big[k] / base[k], 3) for k in keys if k in big}
    return out


def plot(target: Path, sizes: list[int], runs: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    roles = [r for r in (*GATED, "ray_daemon") if all(r in run["peak_rss"] for run in runs)]
    for role in roles:
        line = ax.plot(sizes, [run["peak_rss"][role]["max_process_mib"] for run in runs], marker="o",
                       label=f"{role}: largest process")
        if role != "driver":
            ax.plot(sizes, [run["peak_rss"][role]["total_mib"] for run in runs], marker="s", linestyle="--",
                    color=line[0].get_color(), alpha=0.6, label=f"{role}: all processes")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("input images")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    target.parent.mkdir(exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=24, help="generated scenes at 1x")
    parser.add_argument("--scales", type=int, nargs="+", default=[10],
                        help="further runs with base x scale scenes; the goal compares 1x with the first")
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--models", action="store_true", help="keep the model stages (minutes, not seconds)")
    parser.add_argument("--tag", default="", help="suffix of the result name, e.g. _before")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    from finecap.samples.source import write_sample_source

    runs, sizes = [], []
    with tempfile.TemporaryDirectory(prefix="fc-mem-") as tmp:
        for scenes in (args.base, *(args.base * scale for scale in args.scales)):
            source = write_sample_source(Path(tmp) / f"src{scenes}", n_scenes=scenes, seed=5)
            sizes.append(len(list((source / "images").iterdir())))
            runs.append(run_build(source, Path(tmp) / f"out{scenes}", args.models, args.shard_size))
            print(f"{sizes[-1]} images: {json.dumps(runs[-1])}", flush=True)
    ratios = growth(runs[0], runs[1])
    worst = max(ratios[r]["max_process_mib"] for r in GATED if r in ratios)
    stages = "all stages" if args.models else "model stages off"
    figures = {"images": sizes, "shards": [-(-n // args.shard_size) for n in sizes], "models": args.models,
               "runs": runs, "growth_large_over_small": ratios, "worst_per_process_growth": worst}
    further = ""
    if len(runs) > 2:  # does what grew from 1x keep growing?
        figures["growth_last_over_second"] = later = growth(runs[1], runs[-1])
        further = "; {} -> {}: {}".format(sizes[1], sizes[-1], ", ".join(
            f"{r} {later[r]['max_process_mib']:.2f}x" for r in GATED if r in later))
    print(json.dumps(ratios, indent=2))
    print(f"peak RSS growth {sizes[0]} -> {sizes[1]} images ({stages}): worst per-process role {worst:.2f}x{further}")
    recording = not (args.no_record or os.environ.get("FINECAP_BENCH_NO_RECORD"))
    target = PLOT if recording else Path(tempfile.gettempdir()) / PLOT.name  # keep the recorded plot
    plot(target, sizes, runs, f"Peak RSS vs input ({stages}, shard size {args.shard_size})")
    print(f"plot: {target}")
    if recording:
        from benchmarks.record import record

        parts = ", ".join(f"{r} {ratios[r]['max_process_mib']:.2f}x" for r in GATED if r in ratios)
        record(f"memory_scale{args.tag}", figures,
               f"peak RSS {sizes[0]} -> {sizes[1]} images ({stages}): {parts} (largest process per role)"
               f"{further}",
               "flat within 15% (<= 1.15x)")


if __name__ == "__main__":
    main()
