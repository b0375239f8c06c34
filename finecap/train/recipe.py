"""What a stage gives the loop: a model, how rows become samples and batches, and its loss.

The loop (finecap.train.loop) owns everything stages share: devices, wrapping, optimizer,
schedule, accumulation, checkpoints, resume and logs. A recipe only knows its stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from finecap.train.batches import Batch, Collate, Prepare, Sample
from finecap.train.checkpoint import TOWERS, load_heads
from finecap.train.config import PhaseConfig, TrainConfig
from finecap.train.distributed import Dist
from finecap.train.patches import decode_image, patchify


@dataclass(frozen=True)
class StepContext:
    step: int
    micro: int
    seed: int
    dist: Dist

    def generator(self) -> torch.Generator:
        """Randomness of this (step, micro-batch, rank): the same again after a resume."""
        seed = int(np.random.default_rng([self.seed, self.step, self.micro, self.dist.rank]).integers(2**62))
        return torch.Generator().manual_seed(seed)


class Recipe:
    """Base of the three stages; subclasses set `model` and `tokenizers` in __init__."""

    name: str = ""
    metric_names: tuple[str, ...] = ()

    def __init__(self, config: TrainConfig, init: Path | None, resume: Path | None, device: torch.device) -> None:
        self.config = config
        self.stage = config.stage(self.name)
        self.device = device
        self.model: nn.Module
        self.tokenizers: dict[str, Any] = {}

    def prepare(self, phase: PhaseConfig) -> Prepare:
        raise NotImplementedError

    def collate(self, phase: PhaseConfig) -> Collate:
        return no_fields

    def select(self):
        """A rewrite of each row before `prepare` (Callable[[Unit, dict], dict]), or None."""
        return None

    def loss(self, model: nn.Module, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def meta(self, phase: PhaseConfig) -> dict[str, Any]:
        """Facts evaluation needs to use the checkpoint as trained (saved in state.json)."""
        return {"resolution": phase.resolution, "text_length": phase.text_length}

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict]:
        """No weight decay on biases, norms and scalars (the usual AdamW practice)."""
        decay, no_decay = [], []
        for _, p in model.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def no_fields(samples: list[Sample]) -> dict[str, torch.Tensor]:
    return {}


@dataclass(frozen=True)
class ImagePrepare:
    """Row -> image patches at the phase's resolution (stage I)."""

    max_pixels: int

    def __call__(self, row: dict, rng: np.random.Generator) -> Sample | None:
        patches, positions = patchify(decode_image(row["image"]["bytes"]), self.max_pixels)
        return Sample(row["key"], patches, positions)


def head_keys(model: nn.Module) -> set[str]:
    """State-dict keys that live in heads.safetensors (not the vision tower, not a transformers tower)."""
    prefixes = ("vision.", *TOWERS.values())
    return {k for k in model.state_dict() if not k.startswith(prefixes)}


def load_head_weights(model: nn.Module, checkpoint: Path | None, required: bool) -> None:
    """Restore the heads saved with a checkpoint; `required` on resume, best effort on init."""
    heads = load_heads(checkpoint) if checkpoint else {}
    expected = head_keys(model)
    present = {k: v for k, v in heads.items() if k in expected}
    missing = expected - present.keys()
    if required and missing:
        raise ValueError(f"checkpoint {checkpoint} lacks {sorted(missing)[:3]} for this model")
    if present and not missing:
        model.load_state_dict(present, strict=False)


def collect_texts(uri: str, rows: int) -> list[str]:
    """Texts of the first `rows` rows (file order), to fit the tiny tokenizer: same data, same vocabulary."""
    from finecap.train.shards import iter_all_rows
    from finecap.train.tasks import PROMPTS
    from finecap.train.tokens import row_texts

    texts = [t for row in iter_all_rows(uri, ("captions", "regions"), limit=rows) for t in row_texts(row)]
    return [*texts, *PROMPTS.values(), "0 1 2 3 4 5 6 7 8 9 (0,0),(1000,1000)"]


def tiny_tokenizer(config: TrainConfig, tower) -> object | None:
    """The locally fitted tokenizer a `tiny` tower needs; None for a pretrained tower (it has its own)."""
    if tower.model != "tiny":
        return None
    from finecap.train.tokens import train_tiny_tokenizer

    texts = collect_texts(config.data.uri, config.model.tokenizer.train_rows)
    return train_tiny_tokenizer(texts, config.model.tokenizer.vocab_size)


def max_pixels(phase: PhaseConfig) -> int:
    return phase.resolution * phase.resolution
