"""Word matching: IoU, quads, normalisation and one detection per word."""

from __future__ import annotations

import pytest

from finecap.samples.matching import box_iou, match_words, normalise_text, quad_to_box


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_quad_to_box_takes_the_extent_of_rotated_corners():
    assert quad_to_box([[2, 1], [12, 3], [11, 9], [1, 7]]) == (1.0, 1.0, 12.0, 9.0)


def test_normalise_text_folds_full_width_forms_and_optionally_case():
    assert normalise_text(" ＧＡＲＤＥＮ！ ") == "GARDEN!"
    assert normalise_text("Garden", casefold=True) == "garden"


def test_match_words_needs_exact_text_and_overlap_and_uses_each_detection_once():
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    words = [("river", (0, 0, 10, 10)), ("RIVER", (0, 0, 10, 10)), ("moon", (50, 50, 60, 60))]
    first, second, third = match_words(words, [(square, "river")])
    assert first.ok and first.iou == 1.0
    assert not second.ok and second.read is None  # the only detection is taken
    assert not third.ok and third.iou == 0.0
    (upper,) = match_words([("RIVER", (0, 0, 10, 10))], [(square, "river")])
    assert upper.iou == 1.0 and not upper.exact
    (folded,) = match_words([("RIVER", (0, 0, 10, 10))], [(square, "river")], casefold=True)
    assert folded.ok
    assert [m.ok for m in match_words(words, None)] == [False, False, False]
