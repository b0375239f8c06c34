"""The same command under torchrun: 2 CPU processes on gloo train a few steps on disjoint data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from finecap.train.checkpoint import latest_checkpoint, load_heads, load_vision, read_state
from finecap.train.logs import read_trace

from .conftest import REPO, TINY_YAML


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(data, output, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "finecap.cli", "train", "stage2",
           "--config", str(TINY_YAML), "--data", str(data), "--output", str(output),
           "--set", "stage2.init_from=null", "--set", "stage2.batch_size=5",
           "--set", "stage2.grad_accum=2", "--set", "data.num_workers=0", "--set", "data.trace=true",
           "--set", "run.threads=1", "--set", "model.vision.layers=1", "--set", "model.tokenizer.train_rows=60"]
    for override in overrides:
        cmd += ["--set", override]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
@pytest.mark.train
def test_torchrun_two_ranks_see_disjoint_data(small_synth, tmp_path):
    done = _torchrun(small_synth, tmp_path, "stage2.steps=3")
    assert done.stdout.count("stage2: step 3,") == 1  # the summary comes from rank 0 only
    traces = [read_trace(tmp_path / "stage2" / "trace" / f"rank-{r}.jsonl") for r in (0, 1)]
    keys = [[k for entry in trace for k in entry["keys"]] for trace in traces]
    assert [len(t) for t in traces] == [3, 3]
    assert len(keys[0]) == len(keys[1]) == 3 * 2 * 5  # 3 steps x 2 micro-batches x 5 rows: one epoch
    assert not set(keys[0]) & set(keys[1])
    assert len(set(keys[0]) | set(keys[1])) == 60
    state = read_state(latest_checkpoint(tmp_path / "stage2"))
    assert state["step"] == 3 and state["world"] == 2 and sorted(state["positions"]) == ["0", "1"]


@pytest.mark.slow
@pytest.mark.train
def test_fsdp_trains_checkpoints_full_tensors_and_resumes(small_synth, tmp_path):
    _torchrun(small_synth, tmp_path, "stage2.steps=2", "run.strategy=fsdp")
    done = _torchrun(small_synth, tmp_path, "stage2.steps=3", "run.strategy=fsdp")
    assert "resuming from" in done.stdout and "(step 2)" in done.stdout
    state = read_state(latest_checkpoint(tmp_path / "stage2"))
    assert state["step"] == 3 and state["world"] == 2
    # Rank 0 wrote full tensors: the single-process loader takes them strictly.
    vision = load_vision(latest_checkpoint(tmp_path / "stage2"))
    assert len(vision.blocks) == 1
    heads = load_heads(latest_checkpoint(tmp_path / "stage2"))
    assert heads["logit_scale"].shape == (1,)


@pytest.mark.slow
@pytest.mark.train
@pytest.mark.parametrize(("strategy", "stop_at"), [("ddp", None), ("fsdp", 1)])
def test_text_tower_frozen_then_trained_under_torchrun(small_synth, tmp_path, strategy, stop_at):
    """Frozen params keep requires_grad (DDP's reducer and FSDP's shards need them): still, then trained.

    The FSDP run stops while frozen and resumes: the frozen tower's optimizer state loads, and
    the resumed run stays frozen until the step.
    """
    schedule = ["model.text.freeze_until_step=2", "model.text.lr_scale=0.5", "run.checkpoint_every=1",
                "run.keep_checkpoints=3", f"run.strategy={strategy}"]
    if stop_at:
        _torchrun(small_synth, tmp_path, f"stage2.steps={stop_at}", *schedule)
    done = _torchrun(small_synth, tmp_path, "stage2.steps=3", *schedule)
    assert ("resuming from" in done.stdout) == bool(stop_at)
    ckpts = [tmp_path / "stage2" / "checkpoints" / f"step-{s:06d}" for s in (1, 2, 3)]
    text = [load_file(c / "text" / "model.safetensors") for c in ckpts]
    assert all(torch.equal(text[0][k], text[1][k]) for k in text[0])  # steps 0 and 1: frozen
    assert any(not torch.equal(text[1][k], text[2][k]) for k in text[1])  # step 2: trained
    proj = [load_heads(c)["text.proj.weight"] for c in ckpts[:2]]
    assert not torch.equal(*proj)  # the projection head trains while the encoder is frozen
