"""`finecap data-engine` end to end at a small size: train, export, held-out build, evaluation.

The steps are far too few to learn anything (`make data-engine`, which CI runs, holds the full size
and its caption F1 goal); what is tested is the loop: every step's output where the module says,
the trained model (not the cached default) captioning, grounding and captioning regions of the
held-out build, the random baseline beside it, and the evaluation's JSON object as the last line.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.train]

SMALL = ["--scenes", "48", "--width", "160", "--height", "120", "--heldout", "3",
         "--train-set", "stage1.steps=2", "--train-set", "stage2.steps=2", "--train-set", "stage3.steps=3",
         "--train-set", "model.tokenizer.train_rows=48", "--train-set", "stage2.batch_size=16",
         "--train-set", "stage3.batch_size=8", "--train-set", "stage1.batch_size=8",
         "--set", "filter.min_short_side=96"]  # the 160 x 120 scenes pass the filter


def test_the_loop_trains_exports_builds_with_its_model_and_evaluates(tmp_path):
    out = tmp_path / "engine"
    proc = subprocess.run([sys.executable, "-m", "finecap.cli", "data-engine", str(out), *SMALL], cwd=REPO,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])  # the evaluation's JSON object, last
    model = out / "model"
    assert (model / "config.json").exists() and (out / "work" / "run" / "stage3").is_dir()
    captioners = {c["model"] for c in result["captions"]}
    assert captioners == {str(model), "tiny:vlm-a"}  # the trained model beside the random baseline
    assert result["detection"]["model"].startswith(f"{model}@")  # the trained model grounded the phrases
    assert result["images"]["truth"] == 3 and result["images"]["rows_matched"] == 3
    record = json.loads((out / "data-engine.json").read_text())
    assert set(record["seconds"]) >= {"synth", "stage1", "stage2", "stage3", "export", "build", "eval", "total"}
    assert json.loads((out / "heldout" / "report" / "eval_dataset.json").read_text())["captions"]
    manifests = [json.loads(p.read_text()) for p in (out / "heldout" / "_manifest").glob("*.json")]
    assert manifests and all(m["prompts"].get("finevit_region/v1") for m in manifests)


def test_a_heldout_seed_equal_to_the_training_seed_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "finecap.cli", "data-engine", str(tmp_path / "x"), "--seed", "3",
                           "--heldout-seed", "3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "is the training seed" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x").exists()
