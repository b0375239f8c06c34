"""Scoring OCR output against a scene's ground-truth words.

Shared by the sample tests and the synthetic benchmark so both hold the same bar: a word
counts as read when a detection has exactly its text (after NFKC) and a box at IoU >= 0.5.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

Quad = Sequence[Sequence[float]]
BoxF = tuple[float, float, float, float]


@dataclass(frozen=True)
class WordMatch:
    text: str
    read: str | None  # text of the best-overlapping detection, if any overlaps at all
    iou: float
    exact: bool  # same text after NFKC and stripping, case included

    @property
    def ok(self) -> bool:
        return self.exact and self.iou >= 0.5


def normalise_text(text: str, casefold: bool = False) -> str:
    """NFKC (PP-OCR emits full-width punctuation), outer spaces off, optionally case-folded."""
    text = unicodedata.normalize("NFKC", text).strip()
    return text.casefold() if casefold else text


def quad_to_box(quad: Quad) -> BoxF:
    """Axis-aligned box around a detection's corner points."""
    xs = [float(p[0]) for p in quad]
    ys = [float(p[1]) for p in quad]
    return min(xs), min(ys), max(xs), max(ys)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes (0 when either is empty)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_words(
    words: Sequence[tuple[str, Sequence[float]]],
    detections: Sequence[tuple[Quad, str]] | None,
    casefold: bool = False,
) -> list[WordMatch]:
    """For each (text, pixel box) word, the detection that overlaps it most.

    `detections` are (quad, text) pairs in pixels, e.g. the first two fields of RapidOCR's
    results (None when it found nothing). Each detection is used for at most one word.
    """
    boxes = [(quad_to_box(quad), text) for quad, text in (detections or [])]
    free = set(range(len(boxes)))
    matches = []
    for text, box in words:
        scored = [(box_iou(box, boxes[i][0]), i) for i in free]
        iou, best = max(scored, default=(0.0, -1))
        if iou <= 0:
            matches.append(WordMatch(text, None, 0.0, False))
            continue
        free.discard(best)
        read = boxes[best][1]
        exact = normalise_text(read, casefold) == normalise_text(text, casefold)
        matches.append(WordMatch(text, read, iou, exact))
    return matches
