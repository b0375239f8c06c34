"""Stage I (masked image modelling) learns: its loss falls on the synthetic scenes."""

from __future__ import annotations

import csv

import pytest
import torch

from finecap.train.checkpoint import latest_checkpoint, read_state
from finecap.train.stage1 import random_mask


def test_random_mask_masks_the_ratio_of_every_image():
    mask = random_mask([16, 4, 1], 0.75, torch.Generator().manual_seed(0))
    assert mask[:16].sum() == 12 and mask[16:20].sum() == 3 and mask[20:].sum() == 1
    again = random_mask([16, 4, 1], 0.75, torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)


@pytest.mark.slow
@pytest.mark.train
def test_stage1_loss_falls(stage1_run, run_dir):
    with (run_dir / "stage1" / "log.csv").open() as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == stage1_run.step == 60
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    checkpoint = latest_checkpoint(run_dir / "stage1")
    assert (checkpoint / "vision.safetensors").exists()
    assert read_state(checkpoint)["meta"]["resolution"] == 112
