"""Stage II: sigmoid contrastive image-text learning (SigLIP) at native resolution.

The image side pools FineViT's patch features with a single learned query (SigLIP's MAP head,
segment-wise so packed images never mix); the text side is a transformers encoder. Resolution
and text length follow the config's curriculum (336 -> 448 px, 64 -> 256 tokens in the paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from finecap.train.batches import Batch, Collate, Prepare, Sample
from finecap.train.checkpoint import has_tower
from finecap.train.config import PhaseConfig, TrainConfig
from finecap.train.distributed import gather_with_grad
from finecap.train.losses import siglip_loss
from finecap.train.patches import PackedImages, decode_image, patchify
from finecap.train.recipe import Recipe, StepContext, load_head_weights, max_pixels, tiny_tokenizer
from finecap.train.stage1 import build_vision
from finecap.train.tokens import encode_batch
from finecap.train.towers import TextTower, build_text_encoder, load_pretrained
from finecap.train.vit import FineViT


class AttentionPool(nn.Module):
    """One learned query attends over each image's tokens (multi-head), then a projection."""

    def __init__(self, width: int, heads: int, out_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Parameter(torch.randn(width) * 0.02)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, out_dim, bias=False)  # no bias: a shared offset collapses embeddings

    def forward(self, tokens: torch.Tensor, image_ids: torch.Tensor, num_images: int) -> torch.Tensor:
        t, width = tokens.shape
        k = self.key(tokens).view(t, self.heads, -1)
        v = self.value(tokens).view(t, self.heads, -1)
        q = self.query.view(self.heads, -1)
        scores = (k * q).sum(-1) / math.sqrt(k.shape[-1])  # [T, H]
        index = image_ids.unsqueeze(1).expand(-1, self.heads)
        peak = scores.new_full((num_images, self.heads), -torch.inf).scatter_reduce(0, index, scores, "amax")
        weights = (scores - peak[image_ids]).exp()
        total = scores.new_zeros(num_images, self.heads).index_add(0, image_ids, weights)
        weights = weights / total[image_ids]
        pooled = tokens.new_zeros(num_images, self.heads, v.shape[-1]).index_add(0, image_ids, weights.unsqueeze(-1) * v)
        return self.out(pooled.reshape(num_images, width))


class ContrastiveModel(nn.Module):
    def __init__(self, vision: FineViT, text: TextTower, embed_dim: int, init_scale: float, init_bias: float) -> None:
        super().__init__()
        self.vision = vision
        self.pool = AttentionPool(vision.width, vision.config.heads, embed_dim)
        self.text = text
        # Shape [1], not scalars: FSDP2 shards 1-D parameters only.
        self.logit_scale = nn.Parameter(torch.tensor([math.log(init_scale)]))
        self.logit_bias = nn.Parameter(torch.tensor([float(init_bias)]))

    def encode_image(self, images: PackedImages) -> torch.Tensor:
        tokens = images.unpack(self.vision(images.pixels, images.positions, images.segments))
        return F.normalize(self.pool(tokens, images.image_ids(), images.num_images), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(input_ids, attention_mask), dim=-1)

    def forward(self, images: PackedImages, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.encode_image(images), self.encode_text(input_ids, attention_mask), self.logit_scale, self.logit_bias


@dataclass(frozen=True)
class CaptionPrepare:
    """Row -> image patches and one of its global captions (random, longest or shortest)."""

    max_pixels: int
    choice: str = "random"

    def __call__(self, row: dict, rng: np.random.Generator) -> Sample | None:
        captions = [c["text"] for c in row.get("captions") or [] if c.get("text")]
        if not captions:
            return None
        if self.choice == "longest":
            text = max(captions, key=len)
        elif self.choice == "shortest":
            text = min(captions, key=len)
        else:
            text = captions[int(rng.integers(len(captions)))]
        patches, positions = patchify(decode_image(row["image"]["bytes"]), self.max_pixels)
        return Sample(row["key"], patches, positions, {"text": text})


@dataclass(frozen=True)
class CaptionCollate:
    tokenizer: object
    text_length: int

    def __call__(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        return encode_batch(self.tokenizer, [s.fields["text"] for s in samples], self.text_length)


def build_contrastive(config: TrainConfig, init: Path | None, resume: Path | None) -> tuple[ContrastiveModel, object]:
    """The stage II model: vision from the previous stage (or resume), text tower fresh or resumed."""
    cfg = config.stage2
    if resume is not None and has_tower(resume, "text"):
        encoder, tokenizer = load_pretrained(resume / "text", causal=False)
    else:
        encoder, tokenizer = build_text_encoder(config.model.text, tiny_tokenizer(config, config.model.text))
    text = TextTower(encoder, config.model.text.pooling, cfg.embed_dim)
    model = ContrastiveModel(build_vision(config, resume or init), text, cfg.embed_dim,
                             cfg.init_logit_scale, cfg.init_logit_bias)
    load_head_weights(model, resume, required=resume is not None)
    return model, tokenizer


class Stage2(Recipe):
    name = "stage2"
    metric_names = ("logit_scale", "logit_bias")

    def __init__(self, config: TrainConfig, init: Path | None, resume: Path | None, device: torch.device) -> None:
        super().__init__(config, init, resume, device)
        self.model, tokenizer = build_contrastive(config, init, resume)
        self.tokenizers = {"text": tokenizer}
        self.model.vision.mask_token.requires_grad_(False)  # stage I only; DDP needs every trained param used

    def prepare(self, phase: PhaseConfig) -> Prepare:
        return CaptionPrepare(max_pixels(phase), self.stage.caption)

    def collate(self, phase: PhaseConfig) -> Collate:
        return CaptionCollate(self.tokenizers["text"], phase.text_length)

    def loss(self, model: nn.Module, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        image_emb, text_emb, scale, bias = model(batch.images, batch.tensors["input_ids"], batch.tensors["attention_mask"])
        texts, valid, offset = gather_with_grad(text_emb, ctx.dist)
        loss = siglip_loss(image_emb, texts, scale, bias, valid, offset)
        return loss, {"logit_scale": float(scale.detach().exp()), "logit_bias": float(bias.detach())}
