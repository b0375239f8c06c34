"""Stage III tasks: turn one FineCap row into a (prompt, answer) pair for the language model.

Five tasks, as in FineViT's LLM alignment: global caption, box -> region caption, region
caption -> box, box -> OCR text, OCR text -> box. Boxes are written as integers 0-1000 in
`<|box_start|>(x1,y1),(x2,y2)<|box_end|>`, the Qwen-VL convention, so a pretrained Qwen LM
reads them as it was trained to. A row only offers the tasks its regions support.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from finecap.train.tokens import BOX_END, BOX_START

PROMPTS = {
    "global_caption": "Describe this image.",
    "box_to_caption": "Describe the region {box}.",
    "caption_to_box": "Find the region: {caption}",
    "box_to_ocr": "Read the text in {box}.",
    "ocr_to_box": "Find the text: {text}",
}
_BOX_RE = re.compile(
    re.escape(BOX_START) + r"\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*,\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*" + re.escape(BOX_END)
)


def format_box(bbox: list[float]) -> str:
    """[x1, y1, x2, y2] in [0, 1] -> `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` in integers 0-1000."""
    x1, y1, x2, y2 = (min(1000, max(0, round(float(v) * 1000))) for v in bbox)
    return f"{BOX_START}({x1},{y1}),({x2},{y2}){BOX_END}"


def parse_box(text: str) -> list[float] | None:
    """The first box in `text`, normalised to [0, 1] and ordered; None if there is none."""
    match = _BOX_RE.search(text)
    if not match:
        return None
    x1, y1, x2, y2 = (min(1000, int(v)) / 1000 for v in match.groups())
    return [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]


@dataclass(frozen=True)
class Example:
    task: str
    prompt: str
    answer: str
    bbox: tuple[float, ...] | None = None  # the region's box for grounding tasks


def _unique_regions(row: dict, origin: str, text_field: str) -> list[dict]:
    """Regions of `origin` whose `text_field` is set and shared by no other such region (unambiguous)."""
    regions = [r for r in row.get("regions") or [] if r.get("origin") == origin and r.get(text_field)]
    counts = Counter(r[text_field] for r in regions)
    return [r for r in regions if counts[r[text_field]] == 1]


def captioned_regions(row: dict) -> list[dict]:
    """Detector regions with a caption that no other region of the image shares."""
    return _unique_regions(row, "detector", "caption")


def text_regions(row: dict) -> list[dict]:
    """OCR regions with text that no other OCR region of the image shares."""
    return _unique_regions(row, "ocr", "ocr_text")


def available(row: dict) -> dict[str, int]:
    """Task -> number of candidates this row offers for it."""
    n_regions, n_texts = len(captioned_regions(row)), len(text_regions(row))
    n_captions = sum(1 for c in row.get("captions") or [] if c.get("text"))
    return {
        "global_caption": n_captions,
        "box_to_caption": n_regions,
        "caption_to_box": n_regions,
        "box_to_ocr": n_texts,
        "ocr_to_box": n_texts,
    }


def make_example(row: dict, task: str, index: int) -> Example:
    """The `index`-th example of `task` for this row."""
    if task == "global_caption":
        captions = [c["text"] for c in row["captions"] if c.get("text")]
        return Example(task, PROMPTS[task], captions[index])
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


def sample_example(row: dict, weights: dict[str, float], rng: np.random.Generator) -> Example | None:
    """Pick a task the row supports (by weight), then one of its candidates; None if none apply."""
    counts = available(row)
    tasks = [t for t, w in weights.items() if w > 0 and counts.get(t, 0) > 0]
    if not tasks:
        return None
    p = np.array([weights[t] for t in tasks], dtype=np.float64)
    task = tasks[int(rng.choice(len(tasks), p=p / p.sum()))]
    return make_example(row, task, int(rng.integers(counts[task])))
