"""Grounding DINO's text side and box selection as pure functions on numpy arrays.

Why apart from the engine: prompt packing, phrase scoring and NMS decide which boxes a dataset
gets, and as plain functions they are unit-tested on crafted model outputs without a model.

Scoring rule (documented in docs/architecture.md): a query's score for a phrase is the highest
token probability within that phrase's tokens; the query is labelled with its best phrase, kept
when that score reaches `box_threshold` and the mean probability over the phrase's tokens
reaches `text_threshold` (so a phrase is grounded as a whole, not by one stray subword).
Separators and special tokens never count, unlike a plain max over the whole prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Grounding DINO's prompt convention: phrases joined by ". " and closed with ".".
SEPARATOR = ". "
CLOSING = "."
SPECIAL_TOKENS = 2  # [CLS] and [SEP] around every prompt


@dataclass(frozen=True)
class PromptChunk:
    """One prompt: its text, which of the image's phrases it holds, and where each sits in it."""

    text: str
    phrases: tuple[int, ...]  # indices into the image's phrase list
    spans: tuple[tuple[int, int], ...]  # character [start, end) of each phrase in `text`


@dataclass(frozen=True)
class Candidate:
    """A box before NMS: [x1, y1, x2, y2] normalised to [0, 1], its score and phrase index."""

    box: tuple[float, float, float, float]
    score: float
    phrase: int


def pack_prompts(phrases: Sequence[str], token_counts: Sequence[int], limit: int) -> list[PromptChunk]:
    """Pack phrases, in order, into as few prompts as fit `limit` tokens each.

    A phrase costs its own tokens plus one for the "." after it; every prompt costs two more
    ([CLS], [SEP]). A phrase too long for an empty prompt is left out rather than truncated
    (a cut phrase would ground something else).
    """
    budget = limit - SPECIAL_TOKENS
    chunks: list[list[int]] = []
    used = budget + 1  # forces a new chunk for the first phrase
    for index, count in enumerate(token_counts):
        cost = count + 1
        if cost > budget:
            continue
        if used + cost > budget:
            chunks.append([])
            used = 0
        chunks[-1].append(index)
        used += cost
    return [_chunk(phrases, members) for members in chunks]


def _chunk(phrases: Sequence[str], members: list[int]) -> PromptChunk:
    text, spans = "", []
    for n, index in enumerate(members):
        if n:
            text += SEPARATOR
        spans.append((len(text), len(text) + len(phrases[index])))
        text += phrases[index]
    return PromptChunk(text + CLOSING, tuple(members), tuple(spans))


def token_phrases(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per token, the position in `spans` of the phrase it belongs to; -1 for special tokens,
    separators and padding (their offsets are empty or fall outside every phrase)."""
    out = np.full(len(offsets), -1, dtype=np.int64)
    for t, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        for p, (s, e) in enumerate(spans):
            if start >= s and end <= e:
                out[t] = p
                break
    return out


def ground(
    probs: np.ndarray, token_phrase: np.ndarray, box_threshold: float, text_threshold: float
) -> list[tuple[int, int, float]]:
    """(query, phrase position, score) for every query that grounds a phrase (see module doc).

    `probs` is (queries, tokens) of sigmoid token probabilities; `token_phrase` is (tokens,).
    """
    n_phrases = int(token_phrase.max(initial=-1)) + 1
    if n_phrases == 0 or probs.size == 0:
        return []
    width = min(probs.shape[1], len(token_phrase))
    probs, token_phrase = probs[:, :width], token_phrase[:width]
    best = np.full((probs.shape[0], n_phrases), -np.inf)
    mean = np.zeros((probs.shape[0], n_phrases))
    for p in range(n_phrases):
        columns = probs[:, token_phrase == p]
        if columns.shape[1]:
            best[:, p] = columns.max(axis=1)
            mean[:, p] = columns.mean(axis=1)
    label = best.argmax(axis=1)
    rows = np.arange(probs.shape[0])
    score, label_mean = best[rows, label], mean[rows, label]
    keep = np.nonzero((score >= box_threshold) & (label_mean >= text_threshold))[0]
    return [(int(q), int(label[q]), float(score[q])) for q in keep]


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """DETR-style (cx, cy, w, h) normalised boxes to [x1, y1, x2, y2], clipped to [0, 1]."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy, w, h = boxes.T
    out = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return np.clip(out, 0.0, 1.0)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of [x1, y1, x2, y2] boxes, (len(a), len(b))."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, groups: Sequence[int] | None = None) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best score first. A box is dropped when it
    overlaps a kept box of the same group (every box, when `groups` is None) at IoU > `iou`.
    Ties in score keep the earlier box, so the result does not depend on sort stability."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return []
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    overlaps = iou_matrix(boxes, boxes)
    kept: list[int] = []
    for i in order:
        if all(overlaps[i, j] <= iou or (groups is not None and groups[i] != groups[j]) for j in kept):
            kept.append(i)
    return kept


def select(
    candidates: Sequence[Candidate], min_area: float, nms_iou: float, across_phrases: bool, max_regions: int
) -> list[Candidate]:
    """Drop boxes under `min_area` (share of the image), suppress duplicates, keep the best
    `max_regions`, best first."""
    big = [c for c in candidates if (c.box[2] - c.box[0]) * (c.box[3] - c.box[1]) >= min_area]
    if not big:
        return []
    boxes = np.array([c.box for c in big])
    scores = np.array([c.score for c in big])
    groups = None if across_phrases else [c.phrase for c in big]
    return [big[i] for i in nms(boxes, scores, nms_iou, groups)[:max_regions]]
