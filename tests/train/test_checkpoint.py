import torch
from torch import nn

from finecap.train.checkpoint import (
    latest_checkpoint,
    load_heads,
    load_trainer_state,
    load_vision,
    read_state,
    save_checkpoint,
)
from finecap.train.vit import FineViT, vit_config


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.vision = FineViT(vit_config("tiny", layers=1))
        self.head = nn.Linear(96, 3)


def _save(tmp_path, model, step, keep=2):
    return save_checkpoint(tmp_path, step, model, model.state_dict(), {}, {"optimizer": {"x": torch.ones(2)}},
                           {"stage": "stage1", "positions": {"0": [0, 1, 2]}}, keep=keep)


def test_round_trip_and_latest(tmp_path):
    torch.manual_seed(0)
    model = _Model()
    path = _save(tmp_path, model, 5)
    assert latest_checkpoint(tmp_path) == path
    vision = load_vision(path)
    assert all(torch.equal(a, b) for a, b in zip(vision.state_dict().values(), model.vision.state_dict().values(),
                                                  strict=True))
    assert torch.equal(load_heads(path)["head.weight"], model.head.weight)
    assert read_state(path)["step"] == 5 and read_state(path)["positions"] == {"0": [0, 1, 2]}
    assert torch.equal(load_trainer_state(path)["optimizer"]["x"], torch.ones(2))


def test_old_checkpoints_are_pruned_and_half_written_ones_ignored(tmp_path):
    model = _Model()
    for step in (1, 2, 3):
        _save(tmp_path, model, step)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert names == ["step-000002", "step-000003"]
    (tmp_path / "checkpoints" / "step-000009.tmp-dead").mkdir()  # a writer killed mid-way
    (tmp_path / "checkpoints" / "LATEST").unlink()
    assert latest_checkpoint(tmp_path).name == "step-000003"
