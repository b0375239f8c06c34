"""Trainer: the fraction of step time spent waiting for data, with and without a loader worker.

Why: a trainer whose accelerator idles on JPEG decoding and patching wastes the hours the
dataset was built for. The loop times every `next(batch)` (log.csv column `data_wait_s`,
beside `step_s`), so this reads the logs of real `finecap train` runs:

- stage II of pipelines/train-tiny.yaml on `finecap samples synth` data, from scratch;
- the same run with `data.num_workers` 1 (the default: one reader process per rank
  decodes and patches ahead) and 0 (the training process decodes inline), side by side;
- the first step of each run (worker start-up, tokenizer fitting) is reported apart.

On this 2-core machine the reader process and torch's threads share the same two cores, so
the figure is pessimistic for a GPU node, where the step runs on the GPU. Goal: <= 5%.

    python benchmarks/train_data_wait.py [--steps 60] [--rows 600]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.record import record  # noqa: E402

FINECAP = [sys.executable, "-m", "finecap.cli"]


def train(data: Path, output: Path, steps: int, workers: int) -> list[dict]:
    """Run stage II to `steps` and return its log rows."""
    cmd = [*FINECAP, "train", "stage2", "--config", str(REPO / "pipelines" / "train-tiny.yaml"),
           "--data", str(data), "--output", str(output), "--set", "stage2.init_from=null",
           "--set", f"stage2.steps={steps}", "--set", f"data.num_workers={workers}",
           "--set", "run.resume=false", "--set", f"run.log_every={steps}"]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    with open(output / "stage2" / "log.csv") as f:
        return list(csv.DictReader(f))


def wait_fraction(rows: list[dict]) -> dict:
    steady = rows[1:]
    wait = sum(float(r["data_wait_s"]) for r in steady)
    step = sum(float(r["step_s"]) for r in steady)
    return {"steps": len(rows), "first_step_s": round(float(rows[0]["step_s"]), 3),
            "first_step_wait_s": round(float(rows[0]["data_wait_s"]), 3),
            "steady_step_s": round(step / len(steady), 4), "steady_wait_s": round(wait / len(steady), 4),
            "wait_fraction": round(wait / step, 4),
            "samples_per_s": round(sum(float(r["samples"]) for r in steady) / step, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per run")
    parser.add_argument("--rows", type=int, default=600, help="synthetic scenes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="finecap-bench-") as tmp:
        tmp = Path(tmp)
        subprocess.run([*FINECAP, "samples", "synth", str(tmp / "synth"), "--n", str(args.rows),
                        "--heldout-fraction", "0", "--width", "168", "--height", "126"],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        runs = {f"workers_{w}": wait_fraction(train(tmp / "synth" / "train", tmp / f"run-{w}", args.steps, w))
                for w in (1, 0)}
    for name, figures in runs.items():
        print(f"{name}: {figures['wait_fraction']:.1%} of step time waiting for data "
              f"({figures['steady_wait_s'] * 1000:.1f} of {figures['steady_step_s'] * 1000:.1f} ms per step, "
              f"{figures['samples_per_s']} samples/s); first step {figures['first_step_s']} s")
    w1, w0 = runs["workers_1"], runs["workers_0"]
    headline = (f"data wait {w1['wait_fraction']:.1%} of step time with one loader worker, "
                f"{w0['wait_fraction']:.1%} decoding inline (stage II tiny, {args.steps} steps)")
    record("train_data_wait", {"steps": args.steps, "rows": args.rows, **runs}, headline, "<= 5% of step time")


if __name__ == "__main__":
    main()
