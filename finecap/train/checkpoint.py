"""Checkpoints: safetensors weights, optimizer state and the data position, written whole.

Layout of `STAGE_DIR/checkpoints/step-000100/`:
  vision.safetensors + vision.json   the FineViT tower (what the next stage starts from)
  text/ and lm/                      transformers towers via save_pretrained, with their tokenizer
  heads.safetensors                  everything else (projections, temperature, projector, MIM head)
  trainer.pt                         optimizer and scheduler state (resume only)
  state.json                         stage, step, reader positions, config, model facts
A checkpoint is written into a temporary folder and renamed, then `LATEST` names it: a reader
never sees half a checkpoint, and a killed run resumes from the last complete one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from finecap.train.vit import FineViT, ViTConfig

TOWERS = {"text": "text.encoder.", "lm": "lm."}  # folder -> state-dict prefix of the transformers tower
LATEST = "LATEST"


def checkpoints_dir(stage_dir: Path) -> Path:
    return Path(stage_dir) / "checkpoints"


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The last complete checkpoint of a stage, or None."""
    root = checkpoints_dir(stage_dir)
    pointer = root / LATEST
    if pointer.exists():
        path = root / pointer.read_text().strip()
        if (path / "state.json").exists():
            return path
    done = sorted(p for p in root.glob("step-*") if (p / "state.json").exists() and ".tmp-" not in p.name)
    return done[-1] if done else None


def _split(state_dict: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    parts: dict[str, dict[str, torch.Tensor]] = {"vision": {}, "heads": {}, **{k: {} for k in TOWERS}}
    for name, tensor in state_dict.items():
        if name.startswith("vision."):
            parts["vision"][name.removeprefix("vision.")] = tensor
            continue
        for folder, prefix in TOWERS.items():
            if name.startswith(prefix):
                parts[folder][name.removeprefix(prefix)] = tensor
                break
        else:
            parts["heads"][name] = tensor
    return parts


def _tower(model: torch.nn.Module, folder: str):
    module = model
    for attr in TOWERS[folder].rstrip(".").split("."):
        module = getattr(module, attr, None)
        if module is None:
            return None
    return module


def save_checkpoint(
    stage_dir: Path,
    step: int,
    model: torch.nn.Module,
    state_dict: dict[str, torch.Tensor],
    tokenizers: dict[str, Any],
    trainer_state: dict[str, Any],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint `step` of an unwrapped stage model; returns its folder."""
    root = checkpoints_dir(stage_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f"{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    parts = _split({k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()})
    save_file(parts["vision"], tmp / "vision.safetensors")
    (tmp / "vision.json").write_text(json.dumps(model.vision.config.to_dict(), indent=1))
    if parts["heads"]:
        save_file(parts["heads"], tmp / "heads.safetensors")
    for folder in TOWERS:
        tower = _tower(model, folder)
        if tower is not None:
            tower.save_pretrained(tmp / folder, state_dict=parts[folder])
            tokenizers[folder].save_pretrained(tmp / folder)
    torch.save(trainer_state, tmp / "trainer.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=1, default=str))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_pointer(root, final.name)
    _prune(root, keep, final)
    return final


def _write_pointer(root: Path, name: str) -> None:
    tmp = root / f".{LATEST}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(name + "\n")
    os.replace(tmp, root / LATEST)


def _prune(root: Path, keep: int, current: Path) -> None:
    done = sorted(p for p in root.glob("step-*") if ".tmp-" not in p.name)
    for old in done[:-keep]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob("step-*.tmp-*"):  # left by a killed writer
        shutil.rmtree(stale, ignore_errors=True)


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((Path(checkpoint) / "state.json").read_text())


def load_vision(checkpoint: Path) -> FineViT:
    """The vision tower of any stage's checkpoint."""
    checkpoint = Path(checkpoint)
    config = ViTConfig(**json.loads((checkpoint / "vision.json").read_text()))
    model = FineViT(config)
    model.load_state_dict(load_file(checkpoint / "vision.safetensors"))
    return model


def load_heads(checkpoint: Path) -> dict[str, torch.Tensor]:
    path = Path(checkpoint) / "heads.safetensors"
    return load_file(path) if path.exists() else {}


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(Path(checkpoint) / "trainer.pt", map_location="cpu", weights_only=True)


def has_tower(checkpoint: Path, folder: str) -> bool:
    return (Path(checkpoint) / folder / "config.json").exists()
