"""Smoke run of benchmarks/sink_write.py at a tiny size: it runs, and the sink writes the raw rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_sink_write_quick_run_compares_like_with_like():
    command = [sys.executable, "benchmarks/sink_write.py", "--rows", "96", "--shard-rows", "48", "--batch", "32",
               "--repeats", "1", "--scenes", "3", "--no-record"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FINECAP_BENCH_NO_RECORD": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sink / raw write_table:" in done.stdout.splitlines()[-1]
