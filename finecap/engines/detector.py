"""Grounding DINO through transformers, built once inside the worker that owns it.

`AutoModelForZeroShotObjectDetection` + `AutoProcessor`, so any Grounding DINO checkpoint (hub
name, local path, or the tiny `tiny:gdino`) loads the same way; without torchvision the processor
falls back to its PIL image processor. Phrases are packed into prompts that fit the text
encoder (`detector_grounding.pack_prompts`); every (image, prompt) pair is one row of a batched
forward pass; boxes come back normalised to [0, 1] with the phrase they ground.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from finecap.engines.detector_grounding import (
    Candidate,
    PromptChunk,
    cxcywh_to_xyxy,
    ground,
    pack_prompts,
    token_phrases,
)
from finecap.models.registry import resolve_model
from finecap.models.revision import model_revision

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "auto": "float32"}


class GroundingDinoEngine:
    """Grounds noun phrases in images: `detect(images, phrases) -> candidates per image`."""

    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        max_text_tokens: int | None = None,
    ):
        import torch
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        from finecap.models.quiet import quiet_transformers

        self.model = model
        path = resolve_model(model)
        self.revision = model_revision(path)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.dtype = getattr(torch, _DTYPES[dtype])
        self.batch_size = batch_size
        with quiet_transformers():
            self.processor = AutoProcessor.from_pretrained(path)
            self.net = AutoModelForZeroShotObjectDetection.from_pretrained(path, dtype=self.dtype)
        self.net = self.net.to(self.device).eval()
        self.tokenizer = self.processor.tokenizer
        limit = min(int(self.tokenizer.model_max_length), int(self.net.config.max_text_len))
        self.token_limit = min(limit, max_text_tokens) if max_text_tokens else limit

    def prompts(self, phrases: Sequence[str]) -> list[PromptChunk]:
        """The image's phrases packed into prompts that fit the text encoder."""
        if not phrases:
            return []
        counts = [len(ids) for ids in self.tokenizer(list(phrases), add_special_tokens=False).input_ids]
        return pack_prompts(phrases, counts, self.token_limit)

    def detect(
        self,
        images: Sequence[Image.Image],
        phrases: Sequence[Sequence[str]],
        box_threshold: float,
        text_threshold: float,
    ) -> list[list[Candidate]]:
        """Candidates (before NMS) per image; `Candidate.phrase` indexes that image's phrases."""
        pairs = [(i, chunk) for i, image_phrases in enumerate(phrases) for chunk in self.prompts(image_phrases)]
        out: list[list[Candidate]] = [[] for _ in images]
        for start in range(0, len(pairs), self.batch_size):
            group = pairs[start : start + self.batch_size]
            probs, boxes, offsets = self._forward([images[i] for i, _ in group], [c.text for _, c in group])
            for row, (image_index, chunk) in enumerate(group):
                token_phrase = token_phrases(offsets[row], chunk.spans)
                xyxy = cxcywh_to_xyxy(boxes[row])
                for query, position, score in ground(probs[row], token_phrase, box_threshold, text_threshold):
                    box = tuple(float(v) for v in xyxy[query])
                    out[image_index].append(Candidate(box, score, chunk.phrases[position]))  # type: ignore[arg-type]
        return out

    def _forward(self, images: list[Image.Image], texts: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
        import torch

        pixels = self.processor.image_processor(images=images, return_tensors="pt")
        text = self.tokenizer(texts, padding="longest", return_offsets_mapping=True, return_tensors="pt")
        offsets = text.pop("offset_mapping").tolist()
        inputs = {**{k: v.to(self.device) for k, v in text.items()}, **{k: v.to(self.device) for k, v in pixels.items()}}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            result = self.net(**inputs)
        probs = result.logits.float().sigmoid().cpu().numpy()
        return probs, result.pred_boxes.float().cpu().numpy(), offsets
