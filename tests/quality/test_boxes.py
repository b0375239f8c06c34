"""Box geometry shared by the metrics and the trainer's grounding eval."""

from __future__ import annotations

import pytest

from finecap.quality.boxes import iou, match_boxes, to_pixels


def test_iou():
    assert iou([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert iou([0, 0, 0.5, 1], [0.5, 0, 1, 1]) == 0.0
    assert iou([0, 0, 1, 1], [0, 0, 0.5, 1]) == pytest.approx(0.5)
    assert iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0  # degenerate boxes overlap nothing


def test_to_pixels_scales_by_the_image_size():
    assert to_pixels([0.1, 0.2, 0.5, 1.0], 200, 100) == pytest.approx((20, 20, 100, 100))


def test_matching_is_one_to_one_highest_iou_first():
    truth = [(0, 0, 10, 10), (20, 0, 30, 10)]
    # p0 overlaps t0 a little (IoU 0.5 with 0..10 x 0..5), p1 covers t0 exactly, p2 misses both.
    predicted = [(0, 0, 10, 5), (0, 0, 10, 10), (50, 50, 60, 60)]
    assert match_boxes(predicted, truth) == [(1, 0, 1.0)]  # t0 goes to the better p1; p0 is left over
    assert match_boxes(predicted, truth, min_iou=0.6) == [(1, 0, 1.0)]
    assert match_boxes([(0, 0, 10, 5)], truth) == [(0, 0, 0.5)]  # IoU exactly 0.5 counts
