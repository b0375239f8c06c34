"""The VLM grounder's rules: an answer's box, its score, and what gives no candidate."""

from __future__ import annotations

import math

import pytest

from finecap.engines.base import Generation
from finecap.engines.vlm_grounder import box_score, candidate_of


def _answer(text: str, logprob: float | None = -0.8, tokens: int = 4) -> Generation:
    return Generation(text=text, num_tokens=tokens, finish_reason="stop", logprob=logprob)


def test_a_box_answer_is_a_candidate_scored_by_its_mean_token_probability():
    candidate = candidate_of(_answer("<|box_start|>(100,250),(300,500)<|box_end|>", logprob=-0.8, tokens=4), 3)
    assert candidate.box == (0.1, 0.25, 0.3, 0.5) and candidate.phrase == 3
    assert candidate.score == pytest.approx(math.exp(-0.2))  # exp(-0.8 / 4)


def test_corners_are_ordered_and_clamped_to_the_grid():
    candidate = candidate_of(_answer("<|box_start|>(300,500),(100,1200)<|box_end|>"), 0)
    assert candidate.box == (0.1, 0.5, 0.3, 1.0)


@pytest.mark.parametrize("text", ["a red circle", "<|box_start|>(100,200)<|box_end|>",
                                  "<|box_start|>(100,200),(100,400)<|box_end|>", ""])
def test_an_answer_without_a_box_with_an_area_gives_no_candidate(text):
    assert candidate_of(_answer(text), 0) is None


def test_without_log_probabilities_the_score_is_zero_so_no_threshold_passes_it():
    assert box_score(_answer("x", logprob=None)) == 0.0
    assert box_score(_answer("x", logprob=-1.0, tokens=0)) == 0.0
