"""Boxes as text: `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` with integers on a 0-1000 grid.

The Qwen-VL convention, which FineViT-VL's stage III tasks are written in (finecap.train.tasks),
the region prompts name regions in (stages/regions.py) and the VLM grounder reads its answers in
(engines/vlm_grounder.py): one definition, and no torch import, so every stage can use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

BOX_START, BOX_END = "<|box_start|>", "<|box_end|>"
_BOX_RE = re.compile(
    re.escape(BOX_START) + r"\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*,\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*" + re.escape(BOX_END)
)


def box_coordinates(bbox: Sequence[float]) -> str:
    """[x1, y1, x2, y2] in [0, 1] -> `(x1,y1),(x2,y2)` in integers 0-1000 (clamped)."""
    x1, y1, x2, y2 = (min(1000, max(0, round(float(v) * 1000))) for v in bbox)
    return f"({x1},{y1}),({x2},{y2})"


def format_box(bbox: Sequence[float]) -> str:
    """[x1, y1, x2, y2] in [0, 1] -> `<|box_start|>(x1,y1),(x2,y2)<|box_end|>`."""
    return f"{BOX_START}{box_coordinates(bbox)}{BOX_END}"


def parse_box(text: str) -> list[float] | None:
    """The first box in `text`, normalised to [0, 1] and ordered; None if there is none."""
    match = _BOX_RE.search(text)
    if not match:
        return None
    x1, y1, x2, y2 = (min(1000, int(v)) / 1000 for v in match.groups())
    return [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
