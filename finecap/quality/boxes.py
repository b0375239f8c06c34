"""Box geometry the metrics share: IoU, scaling rows' normalised boxes, one-to-one matching.

Matching is greedy by IoU, highest first, each box used once: what COCO-Text's and most OCR
word-level evaluations do, and for a box's own category what pycocotools does per score order.
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def to_pixels(bbox: Sequence[float], width: int, height: int) -> Box:
    """A row's [0, 1]-normalised [x1, y1, x2, y2] in the truth image's pixels."""
    return (bbox[0] * width, bbox[1] * height, bbox[2] * width, bbox[3] * height)


def match_boxes(predicted: Sequence[Sequence[float]], truth: Sequence[Sequence[float]],
                min_iou: float = 0.5) -> list[tuple[int, int, float]]:
    """(predicted index, truth index, IoU) pairs with IoU >= `min_iou`, each index at most once,
    highest IoU first."""
    candidates = sorted(
        ((iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth)),
        reverse=True,
    )
    used_p, used_t, pairs = set(), set(), []
    for overlap, i, j in candidates:
        if overlap < min_iou:
            break
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        pairs.append((i, j, overlap))
    return pairs
