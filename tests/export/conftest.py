"""A random-weight tiny stage III checkpoint, written the way the trainer writes one, and its export.

No training: the parity tests compare two implementations on the same weights, and random
weights exercise every tensor as well as trained ones do. Built once per session (about 2 s).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY_YAML = REPO / "pipelines" / "train-tiny.yaml"
RESOLUTION = 84  # stage III of train-tiny.yaml: images fit into 84 x 84 pixels
WEIGHT_SCALE = 5.0

torch.set_num_threads(min(2, os.cpu_count() or 1))


def write_stage3_checkpoint(data: Path, run: Path) -> Path:
    """Stage3's own model (build_vlm via the recipe), saved by save_checkpoint with the state the loop writes."""
    from finecap.train.checkpoint import save_checkpoint
    from finecap.train.config import load_train_config
    from finecap.train.stage3 import Stage3
    from finecap.typed_config import to_dict

    config = load_train_config(TINY_YAML, ["model.vision.layers=2", "model.lm.layers=2",
                                           f"stage3.phases=[{{resolution: {RESOLUTION}, text_length: 48}}]"],
                               **{"data.uri": str(data), "run.output": str(run)})
    torch.manual_seed(0)
    recipe = Stage3(config, None, None, torch.device("cpu"))
    with torch.no_grad():
        # At the builders' 0.02 init every greedy answer is one token repeated whatever the image
        # (measured: "\n" x 12 for every image and prompt), so a token-for-token comparison could
        # not fail; x5 makes answers vary with image and prompt. Zero biases would go untested.
        for p in recipe.model.parameters():
            if p.ndim >= 2:
                p.mul_(WEIGHT_SCALE)
            else:
                p.add_(torch.randn_like(p) * 0.02)
    phase = config.stage("stage3").phases[0]
    state = {"stage": "stage3", "positions": {}, "n_slots": 1, "world": 1, "meta": recipe.meta(phase),
             "config": to_dict(config)}
    return save_checkpoint(config.stage_dir("stage3"), 1, recipe.model, recipe.model.state_dict(),
                           recipe.tokenizers, {}, state, keep=1)


@pytest.fixture(scope="session")
def stage3_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finecap.samples.synth_dataset import write_synth_dataset

    root = tmp_path_factory.mktemp("export")
    write_synth_dataset(str(root / "synth"), 12, seed=5, heldout_fraction=0.0, size=(112, 84), shard_size=12,
                        row_group_size=12)
    return write_stage3_checkpoint(root / "synth" / "train", root / "run")


@pytest.fixture(scope="session")
def exported(stage3_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finecap.export import export_checkpoint

    return export_checkpoint(stage3_checkpoint, tmp_path_factory.mktemp("exported") / "finevit-vl")
