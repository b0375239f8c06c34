"""Kill a run with SIGKILL and resume it: the result equals a run that was never interrupted."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys

import pytest
import torch

from finecap.train.checkpoint import latest_checkpoint, load_vision, read_state
from finecap.train.logs import read_trace

from .conftest import REPO, TINY_YAML

STEPS, EVERY, KILL_AT = 8, 3, 5


def _train(data, output, env_extra=None):
    cmd = [sys.executable, "-m", "finecap.cli", "train", "stage1", "--config", str(TINY_YAML), "--data", str(data),
           "--output", str(output), "--set", f"stage1.steps={STEPS}", "--set", f"run.checkpoint_every={EVERY}",
           "--set", "stage1.batch_size=8", "--set", "data.num_workers=1", "--set", "data.trace=true",
           "--set", "run.threads=1", "--set", "model.vision.layers=2", "--set", "stage1.optim.warmup_steps=2"]
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.train
def test_killed_run_resumes_from_its_last_checkpoint(small_synth, tmp_path):
    whole = _train(small_synth, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]

    killed = _train(small_synth, tmp_path / "cut", {"FINECAP_TRAIN_KILL_AT_STEP": str(KILL_AT)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    stage_dir = tmp_path / "cut" / "stage1"
    assert read_state(latest_checkpoint(stage_dir))["step"] == EVERY  # steps 4 and 5 were lost
    assert len(read_trace(stage_dir / "trace" / "rank-0.jsonl")) == KILL_AT

    resumed = _train(small_synth, tmp_path / "cut")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"(step {EVERY})" in resumed.stdout

    # the data position was restored: the same rows, in the same order, as the whole run
    whole_trace = read_trace(tmp_path / "whole" / "stage1" / "trace" / "rank-0.jsonl")
    assert read_trace(stage_dir / "trace" / "rank-0.jsonl") == whole_trace
    with (stage_dir / "log.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, STEPS + 1))
    # weights, optimizer moments and schedule were restored: the same final model
    a = load_vision(latest_checkpoint(tmp_path / "whole" / "stage1")).state_dict()
    b = load_vision(latest_checkpoint(stage_dir)).state_dict()
    assert read_state(latest_checkpoint(stage_dir))["step"] == STEPS
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
