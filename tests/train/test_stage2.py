"""Stage II (SigLIP) learns: held-out retrieval is well above chance, through `finecap eval`."""

from __future__ import annotations

import json

import pytest
import torch

from finecap.cli import main
from finecap.train.checkpoint import latest_checkpoint, read_state
from finecap.train.stage2 import AttentionPool


def test_attention_pool_keeps_packed_images_apart():
    torch.manual_seed(0)
    pool = AttentionPool(8, 2, 4)
    tokens = torch.randn(7, 8)
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    both = pool(tokens, ids, 2)
    alone = pool(tokens[3:], torch.zeros(4, dtype=torch.long), 1)
    assert torch.allclose(both[1], alone[0], atol=1e-6)


@pytest.mark.slow
@pytest.mark.train
def test_stage2_heldout_recall_at_1_is_5x_chance(stage2_run, synth, run_dir, capsys):
    state = read_state(latest_checkpoint(run_dir / "stage2"))
    assert state["config"]["stage2"]["init_from"] == "previous"  # started from stage I's checkpoint
    assert main(["eval", "retrieval", "--checkpoint", str(run_dir / "stage2"), "--data", str(synth / "heldout"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 100 and result["chance_r1"] == pytest.approx(0.01)
    # The detailed (long) captions carry what tells scenes apart; bar: 5x chance both ways.
    long = result["long"]
    assert long["image_to_text"]["r1"] >= 5 * result["chance_r1"], result
    assert long["text_to_image"]["r1"] >= 5 * result["chance_r1"], result
    assert long["image_to_text"]["r10"] >= long["image_to_text"]["r1"]
