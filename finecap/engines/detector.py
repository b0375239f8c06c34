"""Grounding DINO through transformers, built once inside the worker that owns it.

`AutoModelForZeroShotObjectDetection` + `AutoProcessor`, so any Grounding DINO checkpoint (hub
name, local path, or the tiny `tiny:gdino`) loads the same way; without torchvision the processor
falls back to its PIL image processor. Phrases are packed into prompts that fit the text
encoder (`detector_grounding.pack_prompts`); every (image, prompt) pair is one row of a batched
forward pass, the pairs of many images together when their images have one size (`forwards`);
boxes come back normalised to [0, 1] with the phrase they ground.
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
        """Candidates (before NMS) per image; `Candidate.phrase` indexes that image's phrases.

        Every (image, prompt) pair of the call is one row of a forward of up to `batch_size` rows,
        prompts of many images together; a forward only holds images of one size (see `forwards`),
        so results equal one pair per forward."""
        pairs = [(i, chunk) for i, image_phrases in enumerate(phrases) for chunk in self.prompts(image_phrases)]
        found: list[list[Candidate]] = [[] for _ in pairs]
        for group in forwards([images[i].size for i, _ in pairs], self.batch_size):
            members = sorted({pairs[n][0] for n in group})
            pixels = self.processor.image_processor(images=[images[i] for i in members], return_tensors="pt")
            rows = [members.index(pairs[n][0]) for n in group]
            probs, boxes, offsets = self._forward(pixels, rows, [pairs[n][1].text for n in group])
            for row, n in enumerate(group):
                chunk = pairs[n][1]
                token_phrase = token_phrases(offsets[row], chunk.spans)
                xyxy = cxcywh_to_xyxy(boxes[row])
                for query, position, score in ground(probs[row], token_phrase, box_threshold, text_threshold):
                    box = tuple(float(v) for v in xyxy[query])
                    found[n].append(Candidate(box, score, chunk.phrases[position]))  # type: ignore[arg-type]
        out: list[list[Candidate]] = [[] for _ in images]
        for (i, _), candidates in zip(pairs, found, strict=True):
            out[i] += candidates
        return out

    def _forward(self, pixels, rows: list[int], texts: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
        """One forward: row r is image `rows[r]` of `pixels` (each image processed once, however
        many of its prompts the forward holds) with prompt `texts[r]`, padded to the longest."""
        import torch

        index = torch.tensor(rows)
        text = self.tokenizer(texts, padding="longest", return_offsets_mapping=True, return_tensors="pt")
        offsets = text.pop("offset_mapping").tolist()
        inputs = {k: v.to(self.device) for k, v in text.items()}
        inputs.update({k: v.index_select(0, index).to(self.device) for k, v in pixels.items()})
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            result = self.net(**inputs)
        probs = result.logits.float().sigmoid().cpu().numpy()
        return probs, result.pred_boxes.float().cpu().numpy(), offsets


def forwards(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices of the pairs in forwards of at most `batch_size`, each of one image size, first
    seen first.

    One size per forward because the processor pads a batch's images to the largest and the Swin
    backbone attends over the padding: on the tiny model, a 320x240 image batched with a 300x400
    one moved its boxes by up to 0.37 and its token probabilities by up to 0.96 (the pixel mask
    does not reach the backbone). Prompts padded to the longest moved them by under 1e-6.
    """
    by_size: dict[tuple[int, int], list[int]] = {}
    for n, size in enumerate(sizes):
        by_size.setdefault(tuple(size), []).append(n)
    return [members[s : s + batch_size] for members in by_size.values() for s in range(0, len(members), batch_size)]
