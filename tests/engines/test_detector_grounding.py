"""Prompt packing, phrase scoring, thresholds and NMS on crafted detector outputs."""

from __future__ import annotations

import numpy as np
import pytest

from finecap.engines.detector_grounding import (
    Candidate,
    cxcywh_to_xyxy,
    ground,
    iou_matrix,
    nms,
    pack_prompts,
    select,
    token_phrases,
)


def test_prompts_are_packed_in_order_within_the_token_limit():
    phrases = ["red car", "dog", "tall old tree", "bus", "x " * 30]
    counts = [2, 1, 3, 1, 30]
    # limit 10: 8 tokens of budget after [CLS]/[SEP]; each phrase costs its tokens + 1 for ".":
    # 3 + 2 = 5, the tree (4) would make 9, so it opens the second prompt with the bus (4 + 2).
    chunks = pack_prompts(phrases, counts, limit=10)
    assert [c.phrases for c in chunks] == [(0, 1), (2, 3)]
    for chunk in chunks:
        assert sum(counts[i] + 1 for i in chunk.phrases) + 2 <= 10
        for i, (start, end) in zip(chunk.phrases, chunk.spans, strict=True):
            assert chunk.text[start:end] == phrases[i]
    assert [c.text for c in chunks] == ["red car. dog.", "tall old tree. bus."]
    assert all(4 not in c.phrases for c in chunks)  # too long for any prompt: left out, not cut


def test_every_phrase_gets_its_own_prompt_when_the_limit_is_tight():
    chunks = pack_prompts(["a", "b", "c"], [1, 1, 1], limit=4)
    assert [c.text for c in chunks] == ["a.", "b.", "c."]
    assert pack_prompts([], [], limit=256) == []


def test_tokens_map_to_their_phrase_and_separators_to_none():
    text_spans = [(0, 7), (9, 12)]  # "red car. dog."
    offsets = [(0, 0), (0, 3), (4, 7), (7, 8), (9, 12), (12, 13), (0, 0), (0, 0)]  # CLS ... SEP, pad
    assert token_phrases(offsets, text_spans).tolist() == [-1, 0, 0, -1, 1, -1, -1, -1]


def _probs(rows):
    return np.array(rows, dtype=np.float64)


TOKENS = np.array([-1, 0, 0, -1, 1, -1])  # [CLS] red car . dog [SEP]


def test_a_query_is_labelled_with_its_best_phrase():
    probs = _probs([[0.1, 0.6, 0.9, 0.2, 0.4, 0.1]])
    assert ground(probs, TOKENS, 0.3, 0.3) == [(0, 0, pytest.approx(0.9))]


def test_box_threshold_is_inclusive_and_drops_weaker_queries():
    probs = _probs([[0, 0.3, 0.3, 0, 0, 0], [0, 0.29, 0.29, 0, 0.2, 0]])
    assert [q for q, _, _ in ground(probs, TOKENS, 0.3, 0.3)] == [0]


def test_separators_and_special_tokens_never_make_a_box():
    probs = _probs([[0.99, 0.05, 0.05, 0.99, 0.05, 0.99]])
    assert ground(probs, TOKENS, 0.3, 0.3) == []


def test_text_threshold_needs_the_whole_phrase():
    # One subword of "red car" fires, the other does not: mean 0.45 passes 0.3, fails 0.5.
    probs = _probs([[0, 0.8, 0.1, 0, 0, 0]])
    assert len(ground(probs, TOKENS, 0.3, 0.3)) == 1
    assert ground(probs, TOKENS, 0.3, 0.5) == []


def test_centre_boxes_become_clipped_corners():
    out = cxcywh_to_xyxy(np.array([[0.5, 0.5, 0.2, 0.4], [0.95, 0.05, 0.2, 0.2]]))
    np.testing.assert_allclose(out, [[0.4, 0.3, 0.6, 0.7], [0.85, 0.0, 1.0, 0.15]])


def test_nms_suppresses_overlaps_above_the_iou_only():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 8.5], [0, 0, 10, 6.5], [20, 20, 30, 30]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(iou_matrix(boxes[:1], boxes[1:3]), [[0.85, 0.65]])
    assert nms(boxes, scores, 0.7) == [0, 2, 3]
    assert nms(boxes, scores, 0.9) == [0, 1, 2, 3]
    # Per-phrase NMS keeps an overlapping box of another phrase.
    assert nms(boxes, scores, 0.7, groups=[0, 1, 0, 0]) == [0, 1, 2, 3]


def test_nms_orders_by_score_and_breaks_ties_by_position():
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [0, 0, 1, 1]], dtype=float)
    assert nms(boxes, np.array([0.5, 0.9, 0.5]), 0.7) == [1, 0]


def test_select_applies_area_nms_and_the_region_limit():
    candidates = [
        Candidate((0.0, 0.0, 0.5, 0.5), 0.9, 0),
        Candidate((0.0, 0.0, 0.5, 0.48), 0.8, 1),  # duplicate of the first (IoU 0.96)
        Candidate((0.6, 0.6, 0.61, 0.61), 0.95, 2),  # area 0.0001: too small
        Candidate((0.5, 0.5, 1.0, 1.0), 0.7, 0),
        Candidate((0.0, 0.6, 0.3, 1.0), 0.6, 1),
    ]
    kept = select(candidates, min_area=0.0005, nms_iou=0.7, across_phrases=True, max_regions=2)
    assert [c.score for c in kept] == [0.9, 0.7]
    per_phrase = select(candidates, min_area=0.0005, nms_iou=0.7, across_phrases=False, max_regions=10)
    assert [c.score for c in per_phrase] == [0.9, 0.8, 0.7, 0.6]
