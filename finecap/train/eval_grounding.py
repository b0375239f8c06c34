"""Grounding of a stage III checkpoint: caption -> box and box -> caption on held-out rows.

- caption -> box: greedy-decode a box for each region caption; a hit is IoU >= 0.5 with the
  region's box. Baseline: the best constant guess, the mean box of the evaluated regions.
- caption -> box match and box -> caption match: the model scores every candidate of the same
  image (each region's box, or each region's caption) by the total log-likelihood of the
  answer; a hit is the right one ranked first. Baseline: chance, the mean of 1 / candidates.
- OCR tasks the same way when the data has OCR regions (text -> box, box -> text exact match).
"""

from __future__ import annotations

from pathlib import Path

import torch

from finecap.quality.boxes import iou
from finecap.train.losses import IGNORE
from finecap.train.patches import decode_image, pack, patchify
from finecap.train.shards import iter_all_rows
from finecap.train.stage3 import answer_ids, pad_sequences, prompt_ids
from finecap.train.tasks import PROMPTS, captioned_regions, format_box, parse_box, text_regions
from finecap.train.vit import MERGE

IOU_HIT = 0.5


def load_vlm(checkpoint: str | Path):
    from finecap.train.evaluate_common import checkpoint_config
    from finecap.train.stage3 import build_vlm

    path, config, meta = checkpoint_config(checkpoint, "stage3")
    model, tokenizer = build_vlm(config, None, path)
    return model.eval(), tokenizer, meta


class Grounder:
    """Generation and scoring with one image's LM tokens computed once per row."""

    def __init__(self, model, tokenizer, resolution: int, max_new_tokens: int = 40) -> None:
        self.model, self.tok, self.resolution, self.max_new = model, tokenizer, resolution, max_new_tokens

    @torch.no_grad()
    def image(self, row: dict) -> torch.Tensor:
        patches, positions = patchify(decode_image(row["image"]["bytes"]), self.resolution**2)
        return self.model.image_tokens(pack([(patches, positions)]))

    def _prompt(self, visual: torch.Tensor, prompt: str) -> list[int]:
        return prompt_ids(self.tok, visual.shape[0], prompt)

    @torch.no_grad()
    def generate(self, visual: torch.Tensor, prompts: list[str]) -> list[str]:
        ids = [self._prompt(visual, p) for p in prompts]
        batch = pad_sequences(ids, None, self.tok.pad_token_id, left=True)
        embeds = self.model.embed_with(visual.repeat(len(prompts), 1), batch["input_ids"])
        out = self.model.lm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                                     max_new_tokens=self.max_new, do_sample=False,
                                     eos_token_id=self.tok.eos_token_id, pad_token_id=self.tok.pad_token_id)
        return self.tok.batch_decode(out, skip_special_tokens=False)

    @torch.no_grad()
    def score(self, visual: torch.Tensor, prompt: str, answers: list[str]) -> torch.Tensor:
        """Total log-likelihood of each answer (with its end token) after the prompt."""
        head = self._prompt(visual, prompt)
        tails = [answer_ids(self.tok, a) for a in answers]
        batch = pad_sequences([head + t for t in tails], [[IGNORE] * len(head) + t for t in tails],
                              self.tok.pad_token_id)
        embeds = self.model.embed_with(visual.repeat(len(answers), 1), batch["input_ids"])
        logits = self.model.lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        logp = torch.log_softmax(logits.float(), dim=-1)
        picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (picked * (labels != IGNORE)).sum(dim=1)


def _box_hits(grounder: Grounder, visual, prompts: list[str], boxes: list[list[float]]) -> list[float]:
    ious = []
    for text, box in zip(grounder.generate(visual, prompts), boxes, strict=True):
        guess = parse_box(text)
        ious.append(iou(guess, box) if guess else 0.0)
    return ious


def evaluate_grounding(checkpoint: str, data: str, limit: int | None = None, max_new_tokens: int = 40) -> dict:
    model, tokenizer, meta = load_vlm(checkpoint)
    grounder = Grounder(model, tokenizer, meta["resolution"], max_new_tokens)
    c2b_ious, c2b_boxes, b2c_hits, c2b_hits, chance = [], [], [], [], []
    t2b_ious, b2t_hits = [], []
    for row in iter_all_rows(data, ("key", "image", "regions"), limit):
        regions, texts = captioned_regions(row), text_regions(row)
        if not regions and not texts:
            continue
        visual = grounder.image(row)
        if regions:
            prompts = [PROMPTS["caption_to_box"].format(caption=r["caption"]) for r in regions]
            c2b_ious += _box_hits(grounder, visual, prompts, [r["bbox"] for r in regions])
            c2b_boxes += [r["bbox"] for r in regions]
        if len(regions) >= 2:
            captions = [r["caption"] for r in regions]
            boxes = [format_box(r["bbox"]) for r in regions]
            for i, r in enumerate(regions):
                scores = grounder.score(visual, PROMPTS["box_to_caption"].format(box=boxes[i]), captions)
                b2c_hits.append(float(int(scores.argmax()) == i))
                scores = grounder.score(visual, PROMPTS["caption_to_box"].format(caption=r["caption"]), boxes)
                c2b_hits.append(float(int(scores.argmax()) == i))
                chance.append(1.0 / len(regions))
        if texts:
            prompts = [PROMPTS["ocr_to_box"].format(text=r["ocr_text"]) for r in texts]
            t2b_ious += _box_hits(grounder, visual, prompts, [r["bbox"] for r in texts])
            reads = grounder.generate(visual, [PROMPTS["box_to_ocr"].format(box=format_box(r["bbox"])) for r in texts])
            b2t_hits += [float(_answer(g, tokenizer) == r["ocr_text"]) for g, r in zip(reads, texts, strict=True)]
    mean_box = torch.tensor(c2b_boxes).mean(0).tolist() if c2b_boxes else None
    baseline_ious = [iou(mean_box, b) for b in c2b_boxes] if mean_box else []
    return {
        "task": "grounding", "checkpoint": str(checkpoint), "data": data, "image_tokens_merge": MERGE,
        "caption_to_box": {"n": len(c2b_ious), "acc_iou50": _mean([float(v >= IOU_HIT) for v in c2b_ious]),
                           "mean_iou": _mean(c2b_ious),
                           "baseline_mean_box_acc_iou50": _mean([float(v >= IOU_HIT) for v in baseline_ious]),
                           "baseline_mean_box_mean_iou": _mean(baseline_ious)},
        "caption_to_box_match": {"n": len(c2b_hits), "acc": _mean(c2b_hits), "baseline_chance": _mean(chance)},
        "box_to_caption": {"n": len(b2c_hits), "acc": _mean(b2c_hits), "baseline_chance": _mean(chance)},
        "ocr_to_box": {"n": len(t2b_ious), "acc_iou50": _mean([float(v >= IOU_HIT) for v in t2b_ious])},
        "box_to_ocr": {"n": len(b2t_hits), "exact": _mean(b2t_hits)},
    }


def _answer(generated: str, tokenizer) -> str:
    """The decoded answer up to its end token, without padding."""
    for stop in (tokenizer.eos_token, tokenizer.pad_token):
        generated = generated.split(stop, 1)[0] if stop else generated
    return generated.strip()


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
