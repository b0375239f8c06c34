"""Stage III tasks: turn one FineCap row into a (prompt, answer) pair for the language model.

Five tasks, as in FineViT's LLM alignment: global caption, box -> region caption, region
caption -> box, box -> OCR text, OCR text -> box. Boxes are written as integers 0-1000 in
`<|box_start|>(x1,y1),(x2,y2)<|box_end|>` (finecap/box_format.py), the Qwen-VL convention, so a
pretrained Qwen LM reads them as it was trained to. A row only offers the tasks its regions support.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from finecap.box_format import format_box, parse_box  # noqa: F401 (the tasks' box format)

PROMPTS = {
    "global_caption": "Describe this image.",
    "box_to_caption": "Describe the region {box}.",
    "caption_to_box": "Find the region: {caption}",
    "box_to_ocr": "Read the text in {box}.",
    "ocr_to_box": "Find the text: {text}",
}


@dataclass(frozen=True)
class Example:
    task: str
    prompt: str
    answer: str
    bbox: tuple[float, ...] | None = None  # the region's box for grounding tasks


def regions_with(row: dict, origin: str, text_field: str) -> list[dict]:
    """Regions of `origin` whose `text_field` is set."""
    return [r for r in row.get("regions") or [] if r.get("origin") == origin and r.get(text_field)]


def _unique_regions(row: dict, origin: str, text_field: str) -> list[dict]:
    """Regions of `origin` whose `text_field` is set and shared by no other such region (unambiguous)."""
    regions = regions_with(row, origin, text_field)
    counts = Counter(r[text_field] for r in regions)
    return [r for r in regions if counts[r[text_field]] == 1]


def captioned_regions(row: dict) -> list[dict]:
    """Detector regions with a caption that no other region of the image shares."""
    return _unique_regions(row, "detector", "caption")


def text_regions(row: dict) -> list[dict]:
    """OCR regions with text that no other OCR region of the image shares."""
    return _unique_regions(row, "ocr", "ocr_text")


def global_captions(row: dict, choice: str = "random") -> list[str]:
    """The row's global captions a task may use: all of them (`random`), or its `longest` or
    `shortest` only (FineCap data: the detailed recaption, or a brief caption)."""
    captions = [c["text"] for c in row.get("captions") or [] if c.get("text")]
    if choice == "random" or not captions:
        return captions
    return [(max if choice == "longest" else min)(captions, key=len)]


def available(row: dict, caption: str = "random") -> dict[str, int]:
    """Task -> number of candidates this row offers for it."""
    n_regions, n_texts = len(captioned_regions(row)), len(text_regions(row))
    n_captions = len(global_captions(row, caption))
    return {
        "global_caption": n_captions,
        "box_to_caption": n_regions,
        "caption_to_box": n_regions,
        "box_to_ocr": n_texts,
        "ocr_to_box": n_texts,
    }


def make_example(row: dict, task: str, index: int, caption: str = "random") -> Example:
    """The `index`-th example of `task` for this row (`caption`: which global captions, see global_captions)."""
    if task == "global_caption":
        return Example(task, PROMPTS[task], global_captions(row, caption)[index])
    if task in ("box_to_caption", "caption_to_box"):
        region = captioned_regions(row)[index]
        box = format_box(region["bbox"])
        if task == "box_to_caption":
            return Example(task, PROMPTS[task].format(box=box), region["caption"], tuple(region["bbox"]))
        return Example(task, PROMPTS[task].format(caption=region["caption"]), box, tuple(region["bbox"]))
    region = text_regions(row)[index]
    box = format_box(region["bbox"])
    if task == "box_to_ocr":
        return Example(task, PROMPTS[task].format(box=box), region["ocr_text"], tuple(region["bbox"]))
    if task == "ocr_to_box":
        return Example(task, PROMPTS[task].format(text=region["ocr_text"]), box, tuple(region["bbox"]))
    raise ValueError(f"unknown task {task!r}")


def sample_example(row: dict, weights: dict[str, float], rng: np.random.Generator,
                   caption: str = "random") -> Example | None:
    """Pick a task the row supports (by weight), then one of its candidates; None if none apply."""
    counts = available(row, caption)
    tasks = [t for t, w in weights.items() if w > 0 and counts.get(t, 0) > 0]
    if not tasks:
        return None
    p = np.array([weights[t] for t in tasks], dtype=np.float64)
    task = tasks[int(rng.choice(len(tasks), p=p / p.sum()))]
    return make_example(row, task, int(rng.integers(counts[task])), caption)
