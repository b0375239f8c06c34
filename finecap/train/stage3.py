"""Stage III: align FineViT with a causal LM through a 2-layer MLP projector.

Each sample is one task (finecap.train.tasks) on one image; the sequence is
`<|vision_start|><|image_pad|>... <|vision_end|>PROMPT\\n` + `ANSWER</s>`, and only answer tokens
carry loss. The vision tower starts from stage II, the LM from its config (tiny or pretrained).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from finecap.train.balanced import BalancedRegions, balanced_regions
from finecap.train.batches import Batch, Collate, Prepare, Sample
from finecap.train.checkpoint import has_tower
from finecap.train.config import PhaseConfig, TrainConfig
from finecap.train.losses import IGNORE, answer_loss
from finecap.train.patches import decode_image, patchify
from finecap.train.recipe import Recipe, StepContext, load_head_weights, max_pixels, tiny_tokenizer
from finecap.train.stage1 import build_vision
from finecap.train.tasks import sample_example
from finecap.train.tokens import IMAGE_PAD, VISION_END, VISION_START, token_id
from finecap.train.towers import VisionLanguageModel, build_causal_lm, load_pretrained
from finecap.train.vit import MERGE


def prompt_ids(tokenizer, image_tokens: int, prompt: str) -> list[int]:
    """Image placeholders (one per merged 2x2 window) then the prompt and a newline."""
    vision = [token_id(tokenizer, VISION_START), *[token_id(tokenizer, IMAGE_PAD)] * image_tokens,
              token_id(tokenizer, VISION_END)]
    return vision + tokenizer(prompt + "\n", add_special_tokens=False)["input_ids"]


def answer_ids(tokenizer, answer: str) -> list[int]:
    return tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def sequence(tokenizer, image_tokens: int, prompt: str, answer: str, text_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels): labels are IGNORE on the image and prompt; text is cut to `text_length`."""
    head = prompt_ids(tokenizer, image_tokens, prompt)
    tail = answer_ids(tokenizer, answer)
    budget = image_tokens + 2 + text_length
    if len(head) >= budget:
        raise ValueError(f"prompt of {len(head) - image_tokens - 2} tokens leaves no room in text_length {text_length}")
    tail = tail[: budget - len(head)]
    return head + tail, [IGNORE] * len(head) + tail


@dataclass(frozen=True)
class ExamplePrepare:
    max_pixels: int
    tokenizer: object
    weights: dict
    text_length: int
    caption: str = "random"

    def __call__(self, row: dict, rng: np.random.Generator) -> Sample | None:
        example = sample_example(row, self.weights, rng, self.caption)
        if example is None:
            return None
        patches, positions = patchify(decode_image(row["image"]["bytes"]), self.max_pixels)
        ids, labels = sequence(self.tokenizer, patches.shape[0] // (MERGE * MERGE), example.prompt,
                               example.answer, self.text_length)
        return Sample(row["key"], patches, positions, {"input_ids": ids, "labels": labels, "task": example.task})


@dataclass(frozen=True)
class SequenceCollate:
    pad_id: int

    def __call__(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        return pad_sequences([s.fields["input_ids"] for s in samples], [s.fields["labels"] for s in samples],
                             self.pad_id)


def pad_sequences(ids: list[list[int]], labels: list[list[int]] | None, pad_id: int, left: bool = False) -> dict:
    """Right padding for training; left padding for generation (prompts end together)."""
    length = max(len(x) for x in ids)
    out_ids = torch.full((len(ids), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), length), dtype=torch.long)
    out_labels = torch.full((len(ids), length), IGNORE, dtype=torch.long)
    for i, seq in enumerate(ids):
        sl = slice(length - len(seq), length) if left else slice(0, len(seq))
        out_ids[i, sl] = torch.tensor(seq)
        mask[i, sl] = 1
        if labels is not None:
            out_labels[i, sl] = torch.tensor(labels[i])
    out = {"input_ids": out_ids, "attention_mask": mask}
    if labels is not None:
        out["labels"] = out_labels
    return out


def build_vlm(config: TrainConfig, init: Path | None, resume: Path | None) -> tuple[VisionLanguageModel, object]:
    """Vision from the previous stage (or resume); LM and projector from a stage III checkpoint or fresh."""
    lm_source = next((c for c in (resume, init) if c is not None and has_tower(c, "lm")), None)
    if lm_source is not None:
        lm, tokenizer = load_pretrained(lm_source / "lm", causal=True)
    else:
        lm, tokenizer = build_causal_lm(config.model.lm, tiny_tokenizer(config, config.model.lm))
    model = VisionLanguageModel.assemble(build_vision(config, resume or init), lm, tokenizer)
    load_head_weights(model, lm_source, required=resume is not None)
    return model, tokenizer


class Stage3(Recipe):
    name = "stage3"

    def __init__(self, config: TrainConfig, init: Path | None, resume: Path | None, device: torch.device) -> None:
        super().__init__(config, init, resume, device)
        self.model, tokenizer = build_vlm(config, init, resume)
        self.tokenizers = {"lm": tokenizer}
        self.model.vision.mask_token.requires_grad_(False)  # stage I only; DDP needs every trained param used
        if self.stage.vision_lr_scale == 0:
            self.model.vision.requires_grad_(False)

    def prepare(self, phase: PhaseConfig) -> Prepare:
        return ExamplePrepare(max_pixels(phase), self.tokenizers["lm"], dict(self.stage.tasks), phase.text_length,
                              self.stage.caption)

    def collate(self, phase: PhaseConfig) -> Collate:
        return SequenceCollate(self.tokenizers["lm"].pad_token_id)

    def select(self) -> BalancedRegions | None:
        """The output's balanced selection, when it has one: only selected regions are trained on."""
        return balanced_regions(self.config.data.uri)

    def loss(self, model: nn.Module, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        t = batch.tensors
        logits = model(batch.images, t["input_ids"], t["attention_mask"])
        return answer_loss(logits, t["labels"]), {}

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict]:
        lr, scale = self.stage.optim.lr, self.stage.vision_lr_scale
        groups = []
        for is_vision in (True, False):
            for decay in (True, False):
                params = [p for n, p in model.named_parameters()
                          if p.requires_grad and n.startswith("vision.") == is_vision and (p.ndim >= 2) == decay]
                if params:
                    groups.append({"params": params, "weight_decay": weight_decay if decay else 0.0,
                                   "lr": lr * scale if is_vision else lr})
        return groups
