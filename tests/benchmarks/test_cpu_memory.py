"""Smoke runs of benchmarks/cpu_overhead.py and benchmarks/memory_scale.py at tiny sizes
(11 s and 20 s on 2 idle cores: embedded Ray starts once and twice)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args, "--no-record"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "FINECAP_BENCH_NO_RECORD": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_cpu_overhead_prints_the_ratio_to_the_floor():
    out = _run("benchmarks/cpu_overhead.py", "--images", "8", "--floor-repeats", "1")
    assert "non-model CPU per image: pipeline" in out.splitlines()[-1]


def test_memory_scale_compares_two_sizes_without_touching_the_recorded_plot():
    plot = REPO / "finecap/benchmark_results/memory_scale.png"
    before = plot.stat().st_mtime if plot.exists() else None
    out = _run("benchmarks/memory_scale.py", "--base", "3", "--scales", "2")
    assert "peak RSS growth 8 -> 11 images" in out
    assert (plot.stat().st_mtime if plot.exists() else None) == before
