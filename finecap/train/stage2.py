"""Stage II: sigmoid contrastive image-text learning (SigLIP) at native resolution.

The image side pools FineViT's patch features with a single learned query (SigLIP's MAP head,
segment-wise so packed images never mix); the text side is a transformers encoder (tiny, BERT-
style, or SigLIP / SigLIP2's text model as in the paper), optionally frozen for the first steps
and then trained at its own learning-rate scale (finecap.train.freeze). Resolution and text
length follow the config's curriculum (336 -> 448 px, 64 -> 256 tokens in the paper).
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
from finecap.train.checkpoint import TOWERS, has_tower, read_state
from finecap.train.config import PhaseConfig, RegionTermConfig, Stage2Config, TextTowerConfig, TrainConfig
from finecap.train.distributed import gather_with_grad
from finecap.train.freeze import FROZEN_UNTIL
from finecap.train.losses import siglip_loss
from finecap.train.patches import PackedImages, decode_image, patchify
from finecap.train.recipe import Recipe, StepContext, load_head_weights, max_pixels, tiny_tokenizer
from finecap.train.region_contrast import box_members, region_batch, region_text_loss, sample_regions
from finecap.train.siglip_text import extend_positions, is_siglip_text
from finecap.train.stage1 import build_vision
from finecap.train.tasks import global_captions
from finecap.train.tokens import encode_batch
from finecap.train.towers import TextTower, build_text_encoder, load_pretrained
from finecap.train.vit import FineViT
from finecap.typed_config import ConfigError


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
        return self._pool_images(images, self._tokens(images))

    def _tokens(self, images: PackedImages) -> torch.Tensor:
        return images.unpack(self.vision(images.pixels, images.positions, images.segments))

    def _pool_images(self, images: PackedImages, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.pool(tokens, images.image_ids(), images.num_images), dim=-1)

    def _pool_regions(self, images: PackedImages, tokens: torch.Tensor, region_image: torch.Tensor,
                      boxes: torch.Tensor) -> torch.Tensor:
        """[N, D]: the same attention pool over each region's tokens (region_contrast.box_members)."""
        token, region = box_members(images, region_image, boxes)
        return F.normalize(self.pool(tokens[token], region, boxes.shape[0]), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(input_ids, attention_mask), dim=-1)

    def forward(self, images: PackedImages, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                regions: dict[str, torch.Tensor] | None = None):
        """(image, text, scale, bias), plus (region, region text) embeddings when `regions` is given."""
        tokens = self._tokens(images)
        out = (self._pool_images(images, tokens), self.encode_text(input_ids, attention_mask),
               self.logit_scale, self.logit_bias)
        if regions is None:
            return out
        region_emb = self._pool_regions(images, tokens, regions["region_image"], regions["region_boxes"])
        return *out, region_emb, self.encode_text(regions["region_input_ids"], regions["region_attention_mask"])


@dataclass(frozen=True)
class CaptionPrepare:
    """Row -> image patches and one of its global captions (random, longest or shortest), plus its
    sampled regions when the region term is on (`regions`; None: off)."""

    max_pixels: int
    choice: str = "random"
    regions: RegionTermConfig | None = None

    def __call__(self, row: dict, rng: np.random.Generator) -> Sample | None:
        captions = global_captions(row, self.choice)
        if not captions:
            return None
        text = captions[int(rng.integers(len(captions)))] if self.choice == "random" else captions[0]
        patches, positions = patchify(decode_image(row["image"]["bytes"]), self.max_pixels)
        fields = {"text": text}
        if self.regions is not None:
            fields["regions"] = sample_regions(row, self.regions.per_image, rng, self.regions.text)
        return Sample(row["key"], patches, positions, fields)


@dataclass(frozen=True)
class CaptionCollate:
    tokenizer: object
    text_length: int

    def __call__(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        out = encode_batch(self.tokenizer, [s.fields["text"] for s in samples], self.text_length)
        if samples and "regions" in samples[0].fields:
            region_texts, tensors = region_batch([s.fields["regions"] for s in samples])
            texts = encode_batch(self.tokenizer, region_texts or [""], self.text_length)
            out.update(tensors, region_input_ids=texts["input_ids"], region_attention_mask=texts["attention_mask"])
        return out


def phase_start(stage: Stage2Config, length: int) -> int | None:
    """The first step of the first phase whose text is longer than `length` tokens; None if none is."""
    start = 0
    for phase in stage.phases:
        if phase.text_length > length:
            return start
        start = phase.until_step or start
    return None


def fit_context(encoder, stage: Stage2Config, text: TextTowerConfig, fresh: bool) -> None:
    """Give the encoder the positions the curriculum's longest text needs, or say which key cannot fit.

    A fresh SigLIP tower grows its learned table (64 -> 256 in the paper); the new rows must be
    trainable by the time a phase uses them, so the freeze has to end first.
    """
    need = max(p.text_length for p in stage.phases)
    have = getattr(encoder.config, "max_position_embeddings", None)
    if have is None or need <= have:
        return
    if not (fresh and is_siglip_text(encoder)):
        raise ConfigError(f"stage2.phases: text_length {need} exceeds the text tower's {have} positions")
    start = phase_start(stage, have)
    if text.lr_scale == 0 or text.freeze_until_step > start:
        raise ConfigError(f"model.text.freeze_until_step: the encoder is frozen at step {start}, where text of "
                          f"{need} tokens starts using {need - have} new, untrained position embeddings")
    extend_positions(encoder, need)


def build_contrastive(config: TrainConfig, init: Path | None, resume: Path | None) -> tuple[ContrastiveModel, object]:
    """The stage II model: vision from the previous stage (or resume), text tower fresh or resumed."""
    cfg = config.stage2
    fresh = resume is None or not has_tower(resume, "text")
    if not fresh:
        encoder, tokenizer = load_pretrained(resume / "text", causal=False)
    else:
        encoder, tokenizer = build_text_encoder(config.model.text, tiny_tokenizer(config, config.model.text))
    fit_context(encoder, cfg, config.model.text, fresh)
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
        if self.stage.regions.weight > 0:
            self.metric_names = (*self.metric_names, "region_loss")
        self.model.vision.mask_token.requires_grad_(False)  # stage I only; DDP needs every trained param used
        if config.model.text.lr_scale == 0:
            self.model.text.encoder.requires_grad_(False)
        if resume is not None:
            check_schedule_unchanged(resume, config.model.text)

    def prepare(self, phase: PhaseConfig) -> Prepare:
        regions = self.stage.regions if self.stage.regions.weight > 0 else None
        return CaptionPrepare(max_pixels(phase), self.stage.caption, regions)

    def collate(self, phase: PhaseConfig) -> Collate:
        return CaptionCollate(self.tokenizers["text"], phase.text_length)

    def loss(self, model: nn.Module, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        t = batch.tensors
        regions = {k: v for k, v in t.items() if k.startswith("region_")} or None
        image_emb, text_emb, scale, bias, *region_out = model(batch.images, t["input_ids"], t["attention_mask"], regions)
        texts, valid, offset = gather_with_grad(text_emb, ctx.dist)
        loss = siglip_loss(image_emb, texts, scale, bias, valid, offset)
        metrics = {"logit_scale": float(scale.detach().exp()), "logit_bias": float(bias.detach())}
        if region_out:
            region_emb, region_text = region_out
            n = region_emb.shape[0]  # a batch without regions encodes one empty text: not a text
            region_loss = region_text_loss(region_emb, region_text[:n], t["region_text_key"], scale, bias, ctx.dist)
            loss = loss + self.stage.regions.weight * region_loss
            metrics["region_loss"] = float(region_loss.detach())
        return loss, metrics

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict]:
        """The text encoder in groups of its own (lr x lr_scale, frozen until a step) when it has a schedule."""
        text = self.config.model.text
        if text.freeze_until_step == 0 and text.lr_scale == 1.0:
            return super().param_groups(model, weight_decay)  # the layout earlier checkpoints resume into
        groups = []
        for in_encoder in (False, True):
            for decay in (True, False):
                params = [p for n, p in model.named_parameters() if p.requires_grad
                          and n.startswith(TOWERS["text"]) == in_encoder and (p.ndim >= 2) == decay]
                if not params:
                    continue
                group = {"params": params, "weight_decay": weight_decay if decay else 0.0}
                if in_encoder:
                    group.update(lr=self.stage.optim.lr * text.lr_scale)
                    group[FROZEN_UNTIL] = text.freeze_until_step
                groups.append(group)
        return groups


def check_schedule_unchanged(resume: Path, text: TextTowerConfig) -> None:
    """A resumed run trains on the schedule its checkpoint's optimizer state holds: the config must agree."""
    saved = read_state(resume).get("config", {}).get("model", {}).get("text", {})
    defaults = TextTowerConfig()
    for key in ("freeze_until_step", "lr_scale"):
        was = saved.get(key, getattr(defaults, key))
        if was != getattr(text, key):
            raise ConfigError(f"model.text.{key}: the checkpoint {resume.name} trained with {was}, this run says "
                              f"{getattr(text, key)}; resume with {was}, or start the stage afresh (run.resume=false)")
