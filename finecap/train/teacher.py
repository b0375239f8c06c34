"""Stage I targets: what the student regresses at masked patches.

- `pixels`: the patch's own normalised pixels (MAE's target); needs nothing, good for CPU tests;
- `finevit`: a frozen FineViT checkpoint's patch features (self-distillation from an earlier run);
- `hf`: a frozen transformers vision model (DINOv3 in the paper). It sees the same resized image
  at its own patch size, so its patch grid matches ours one to one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from finecap.train.config import TeacherConfig
from finecap.train.patches import PackedImages
from finecap.train.vit import PATCH_DIM, PATCH_SIZE


class PixelTeacher(nn.Module):
    dim = PATCH_DIM

    @torch.no_grad()
    def forward(self, images: PackedImages) -> torch.Tensor:
        return images.unpack(images.pixels)


class FineViTTeacher(nn.Module):
    def __init__(self, checkpoint: str) -> None:
        super().__init__()
        from finecap.train.checkpoint import load_vision

        self.vit = load_vision(Path(checkpoint)).eval().requires_grad_(False)
        self.dim = self.vit.width

    @torch.no_grad()
    def forward(self, images: PackedImages) -> torch.Tensor:
        return images.unpack(self.vit(images.pixels, images.positions, images.segments))


class HFTeacher(nn.Module):
    """Any transformers image backbone whose last hidden state ends with one token per patch."""

    def __init__(self, name: str, mean: list[float], std: list[float]) -> None:
        super().__init__()
        from transformers import AutoModel

        self.model = AutoModel.from_pretrained(name).eval().requires_grad_(False)
        config = self.model.config
        self.patch = int(getattr(config, "patch_size", 16))
        self.dim = int(config.hidden_size)
        mean, std = _processor_stats(name, mean, std)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, images: PackedImages) -> torch.Tensor:
        tokens = images.unpack(images.pixels)
        positions = images.unpack(images.positions)
        out, start = [], 0
        for n in images.seq_lens.tolist():
            out.append(self._one(tokens[start : start + n], positions[start : start + n]))
            start += n
        return torch.cat(out)

    def _one(self, patches: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        gh, gw = int(positions[:, 0].max()) + 1, int(positions[:, 1].max()) + 1
        image = torch.zeros(3, gh * PATCH_SIZE, gw * PATCH_SIZE, device=patches.device, dtype=patches.dtype)
        for vec, (r, c) in zip(patches.view(-1, 3, PATCH_SIZE, PATCH_SIZE), positions.tolist(), strict=True):
            image[:, r * PATCH_SIZE : (r + 1) * PATCH_SIZE, c * PATCH_SIZE : (c + 1) * PATCH_SIZE] = vec
        image = F.interpolate(image[None], size=(gh * self.patch, gw * self.patch), mode="bicubic",
                              align_corners=False)
        image = ((image + 1) / 2 - self.mean) / self.std
        hidden = self.model(pixel_values=image).last_hidden_state[0, -gh * gw :]  # drop CLS/register tokens
        grid = hidden.view(gh, gw, -1)
        return grid[positions[:, 0], positions[:, 1]]


def _processor_stats(name: str, mean: list[float], std: list[float]) -> tuple[list[float], list[float]]:
    """The model's own normalisation when its folder says (preprocessor_config.json), else the config's."""
    path = Path(name) / "preprocessor_config.json"
    if path.exists():
        spec = json.loads(path.read_text())
        return spec.get("image_mean", mean), spec.get("image_std", std)
    return mean, std


def build_teacher(cfg: TeacherConfig) -> nn.Module:
    if cfg.kind == "pixels":
        return PixelTeacher()
    if cfg.kind == "finevit":
        return FineViTTeacher(cfg.model)
    return HFTeacher(cfg.model, cfg.image_mean, cfg.image_std)
