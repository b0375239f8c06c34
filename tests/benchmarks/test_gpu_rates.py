"""benchmarks/gpu_rates.py: the quick CPU mode end to end (a loadable, plannable, unclaimed rates
file; no pyarrow / polars / Ray / vLLM imported) and the time guard. No GPU figure is checked here."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.gpu_rates import parse, sweep
from finecap.plan import load_rates, make_plan

REPO = Path(__file__).resolve().parents[2]
# Runs the script as a GPU node would, then says which absent-there packages it imported.
RUN = """
import runpy, sys
sys.argv = ["benchmarks/gpu_rates.py", "--device", "cpu", "--quick", "--out", sys.argv[1]]
try:
    runpy.run_path("benchmarks/gpu_rates.py", run_name="__main__")
except SystemExit as done:
    assert not done.code, done.code
print("IMPORTED", sorted(m for m in ("pyarrow", "polars", "ray", "vllm", "fsspec") if m in sys.modules))
"""


def test_quick_cpu_run_writes_a_smoke_rates_file_that_plans(tmp_path):
    out = tmp_path / "smoke.yaml"
    done = subprocess.run([sys.executable, "-c", RUN, str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "IMPORTED []" in done.stdout, done.stdout[-500:]
    rates = load_rates(out)
    assert not rates.measured and "SMOKE RUN" in rates.label and "NOT GPU figures" in rates.label
    detect, stage2 = rates.stages["detect"], rates.training["stage2"]
    assert detect.note.startswith("measured (smoke)") and "not a GPU figure" in detect.note
    assert detect.items_per_s > 0 and stage2.samples_per_s > 0 and stage2.mfu is None  # no peak for a CPU
    assert all(s.note.startswith("assumed (copied from") for n, s in rates.stages.items() if n != "detect")
    assert make_plan(rates, 1000).bottleneck in rates.stages
    assert "# command: python benchmarks/gpu_rates.py --device cpu --quick" in out.read_text()


def test_quick_needs_an_out_and_cpu_needs_quick(capsys):
    for argv, flag in ((["--device", "cpu", "--quick"], "--out"), (["--device", "cpu"], "--device"),
                       (["--budget-s", "600"], "--budget-s")):
        with pytest.raises(SystemExit):
            parse(argv)
        assert f"error: {flag}:" in capsys.readouterr().err


def test_sweep_skips_batches_that_would_overrun_and_stops_at_out_of_memory():
    def measure(batch):
        if batch == 8:
            raise MemoryError
        return {"total_seconds": 0.01 * batch}

    rows = sweep([1, 2, 4, 8, 16], measure, time.perf_counter() + 60, MemoryError)
    assert list(rows) == [1, 2, 4, 8] and rows[8] == {"skipped": "out of memory"}
    rows = sweep([1, 2000, 4000], lambda b: {"total_seconds": 0.05 * b}, time.perf_counter() + 5, MemoryError)
    assert "total_seconds" in rows[1] and rows[2000]["skipped"].startswith("time budget") and 4000 not in rows
    assert sweep([1], measure, time.perf_counter() - 1, MemoryError) == {1: {"skipped": "time budget (spent)"}}
