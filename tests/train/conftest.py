"""Synthetic data and a tiny config shared by the trainer tests (built once per session).

Sizes are chosen for the CPU budget: the whole trainer suite must stay within a few minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY_YAML = REPO / "pipelines" / "train-tiny.yaml"
N_TRAIN, N_HELDOUT = 1200, 100
SCENE_SIZE = (168, 126)

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUT/train (1200 scenes) and OUT/heldout (100 scenes), fixed seed."""
    from finecap.samples.synth_dataset import write_synth_dataset

    out = tmp_path_factory.mktemp("synth")
    n = N_TRAIN + N_HELDOUT
    write_synth_dataset(str(out), n, seed=7, heldout_fraction=N_HELDOUT / n, size=SCENE_SIZE, shard_size=400,
                        row_group_size=50)
    return out


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-row dataset in 3 shards of 2 row groups each, for the data and loop tests."""
    from finecap.samples.synth_dataset import write_synth_dataset

    out = tmp_path_factory.mktemp("small-synth")
    write_synth_dataset(str(out), 60, seed=3, heldout_fraction=0.0, size=(140, 112), shard_size=20,
                        row_group_size=10)
    return out / "train"


def tiny_config(data: Path, output: Path, *overrides: str):
    from finecap.train.config import load_train_config

    return load_train_config(TINY_YAML, list(overrides), **{"data.uri": str(data), "run.output": str(output)})


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("curriculum")


# The curriculum as the tiny config defines it; each stage starts from the previous one.
# Stage III trains only the two grounding tasks its test measures, to fit the CPU budget.
CURRICULUM = {
    "stage1": [],
    "stage2": [],
    "stage3": ["stage3.tasks={box_to_caption: 1.0, caption_to_box: 1.0}"],
}


def _train(synth: Path, run_dir: Path, stage: str):
    from finecap.train.loop import run_stage

    config = tiny_config(synth / "train", run_dir, "run.log_every=1000", "run.checkpoint_every=1000",
                         *CURRICULUM[stage])
    return run_stage(config, stage)


@pytest.fixture(scope="session")
def stage1_run(synth: Path, run_dir: Path):
    return _train(synth, run_dir, "stage1")


@pytest.fixture(scope="session")
def stage2_run(stage1_run, synth: Path, run_dir: Path):
    return _train(synth, run_dir, "stage2")


@pytest.fixture(scope="session")
def stage3_run(stage2_run, synth: Path, run_dir: Path):
    return _train(synth, run_dir, "stage3")
