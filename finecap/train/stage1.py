"""Stage I: masked image modelling, regressing a frozen teacher's features at masked patches.

75% of each image's patches are replaced by the learned mask token (positions kept, so 2D RoPE
still says where they are); a linear head maps the student's features to the teacher's width.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from finecap.train.batches import Batch, Prepare
from finecap.train.checkpoint import load_vision
from finecap.train.config import PhaseConfig, TrainConfig
from finecap.train.losses import masked_feature_loss
from finecap.train.patches import PackedImages
from finecap.train.recipe import ImagePrepare, Recipe, StepContext, load_head_weights, max_pixels
from finecap.train.teacher import build_teacher
from finecap.train.vit import FineViT, vit_config


def build_vision(config: TrainConfig, source: Path | None) -> FineViT:
    """The vision tower of `source` (a checkpoint), else a fresh one from the model config."""
    if source is not None:
        return load_vision(source)
    v = config.model.vision
    overrides = {k: getattr(v, k) for k in ("width", "layers", "heads", "ffn") if getattr(v, k) is not None}
    return FineViT(vit_config(v.preset, **overrides))


class MaskedImageModel(nn.Module):
    def __init__(self, vision: FineViT, target_dim: int) -> None:
        super().__init__()
        self.vision = vision
        self.head = nn.Linear(vision.width, target_dim)

    def forward(self, images: PackedImages, token_mask: torch.Tensor) -> torch.Tensor:
        """Predicted targets [T, D] for every token (the loss reads the masked ones)."""
        packed_mask = images.scatter(token_mask)
        features = self.vision(images.pixels, images.positions, images.segments, packed_mask)
        return self.head(images.unpack(features))


def random_mask(seq_lens: list[int], ratio: float, generator: torch.Generator) -> torch.Tensor:
    """[T] bool with round(ratio * n) masked tokens in each image (at least one, never all)."""
    parts = []
    for n in seq_lens:
        k = min(n - 1, max(1, round(ratio * n))) if n > 1 else 1
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.randperm(n, generator=generator)[:k]] = True
        parts.append(mask)
    return torch.cat(parts)


class Stage1(Recipe):
    name = "stage1"

    def __init__(self, config: TrainConfig, init: Path | None, resume: Path | None, device: torch.device) -> None:
        super().__init__(config, init, resume, device)
        self.teacher = build_teacher(self.stage.teacher).to(device)
        self.model = MaskedImageModel(build_vision(config, resume or init), self.teacher.dim)
        load_head_weights(self.model, resume, required=resume is not None)

    def prepare(self, phase: PhaseConfig) -> Prepare:
        return ImagePrepare(max_pixels(phase))

    def loss(self, model: nn.Module, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        images = batch.images
        mask = random_mask(images.seq_lens.tolist(), self.stage.mask_ratio, ctx.generator()).to(images.pixels.device)
        pred = model(images, mask)
        target = self.teacher(images)
        return masked_feature_loss(pred, target, mask), {}
