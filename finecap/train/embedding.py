"""Batched embeddings from a stage II checkpoint: images and texts, each in fixed-size batches.

One place for what every retrieval-style evaluation does (held-out shards, zero-shot
classification, Karpathy splits, long-text pairs): load the contrastive model as it was trained,
turn images into patch sequences at the checkpoint's resolution, tokenize texts at a given
length, and return L2-normalised embeddings on the CPU, so memory on the device stays one batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from PIL import Image

from finecap.errors import UserError
from finecap.train.patches import pack, patchify
from finecap.train.tokens import encode_batch

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last one shorter)."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def embed_image_batch(model, images: list[Image.Image], resolution: int) -> torch.Tensor:
    """[B, D] on the CPU; each image resized to fit resolution^2 pixels, aspect ratio kept."""
    packed = pack([patchify(image, resolution * resolution) for image in images])
    return model.encode_image(packed.to(model_device(model))).float().cpu()


@torch.no_grad()
def embed_text_batch(model, tokenizer, texts: list[str], text_length: int) -> torch.Tensor:
    """[B, D] on the CPU; texts truncated at `text_length` tokens."""
    tokens = encode_batch(tokenizer, texts, text_length)
    device = model_device(model)
    return model.encode_text(tokens["input_ids"].to(device), tokens["attention_mask"].to(device)).float().cpu()


def token_counts(tokenizer, texts: Sequence[str], batch_size: int = 256) -> list[int]:
    """Tokens of each text as `encode_batch` encodes it (special tokens or not, as that tokenizer
    is used), untruncated: the limit is above what any tokenizer makes of the text's bytes."""
    counts: list[int] = []
    for batch in batched(texts, batch_size):
        # Byte-level and byte-fallback tokenizers make at most one token per byte; SentencePiece
        # adds a prefix piece and the specials: 2x bytes + 16 leaves room for all of them.
        limit = 2 * max(len(t.encode("utf-8")) for t in batch) + 16
        counts += encode_batch(tokenizer, batch, limit)["attention_mask"].sum(dim=1).tolist()
    return counts


@dataclass
class Encoder:
    """A stage II checkpoint ready to embed: its model, tokenizer and the facts it trained with."""

    model: torch.nn.Module
    tokenizer: object
    meta: dict
    path: Path

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto") -> Encoder:
        """A checkpoint dir, a stage dir or a run output; a missing or wrong one is a one-line error."""
        from transformers.utils import logging as hf_logging

        from finecap.train.evaluate_common import checkpoint_config
        from finecap.train.stage2 import build_contrastive

        hf_logging.disable_progress_bar()  # its "Loading weights" bar on stderr would sit above an `error:` line
        try:
            path, config, meta = checkpoint_config(checkpoint, "stage2")
        except (FileNotFoundError, ValueError) as exc:  # no checkpoint there, or another stage's
            raise UserError(f"--checkpoint: {exc}") from None
        model, tokenizer = build_contrastive(config, None, path)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(model.eval().to(device), tokenizer, meta, path)

    @property
    def resolution(self) -> int:
        return int(self.meta["resolution"])

    @property
    def text_length(self) -> int:
        """The text length the checkpoint last trained at (its curriculum's final phase)."""
        return int(self.meta["text_length"])

    @property
    def max_text_positions(self) -> int | None:
        """How many positions the text encoder has (None when its config does not say)."""
        config = getattr(getattr(self.model.text, "encoder", None), "config", None)
        return getattr(config, "max_position_embeddings", None)

    def images(self, images: Iterable[Image.Image], batch_size: int) -> torch.Tensor:
        parts = [embed_image_batch(self.model, batch, self.resolution) for batch in batched(images, batch_size)]
        if not parts:
            raise ValueError("no images to embed")
        return torch.cat(parts)

    def texts(self, texts: Sequence[str], text_length: int, batch_size: int) -> torch.Tensor:
        parts = [embed_text_batch(self.model, self.tokenizer, batch, text_length)
                 for batch in batched(texts, batch_size)]
        if not parts:
            raise ValueError("no texts to embed")
        return torch.cat(parts)

    def truncation(self, texts: Sequence[str], text_length: int) -> dict:
        """How many texts are longer than `text_length` tokens, and their mean length, for the report."""
        counts = token_counts(self.tokenizer, texts)
        return {"truncated": sum(c > text_length for c in counts),
                "mean_tokens": sum(counts) / len(counts) if counts else 0.0,
                "max_tokens": max(counts, default=0)}
