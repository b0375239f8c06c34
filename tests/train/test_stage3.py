"""Stage III (LLM alignment) learns grounding: both directions beat fixed baselines on held-out scenes."""

from __future__ import annotations

import pytest
import torch

from finecap.train.losses import IGNORE
from finecap.train.stage3 import pad_sequences, sequence
from finecap.train.tokens import IMAGE_PAD, train_tiny_tokenizer


def test_sequence_masks_image_and_prompt_and_ends_with_eos():
    tok = train_tiny_tokenizer(["find the region a red circle", "(0,0),(1000,1000)"] * 10, 300)
    ids, labels = sequence(tok, 3, "find the region", "a red circle", text_length=64)
    assert ids.count(tok.convert_tokens_to_ids(IMAGE_PAD)) == 3
    answer = [t for t in labels if t != IGNORE]
    assert tok.decode(answer[:-1]) == "a red circle" and answer[-1] == tok.eos_token_id
    assert labels[: len(labels) - len(answer)] == [IGNORE] * (len(labels) - len(answer))
    short_ids, _ = sequence(tok, 3, "find the region", "a red circle " * 40, text_length=16)
    assert len(short_ids) == 3 + 2 + 16
    batch = pad_sequences([[1, 2, 3], [4]], None, 0, left=True)
    assert torch.equal(batch["attention_mask"], torch.tensor([[1, 1, 1], [0, 0, 1]]))


@pytest.mark.slow
@pytest.mark.train
def test_stage3_grounding_beats_fixed_baselines(stage3_run, synth, run_dir):
    from finecap.train.eval_grounding import evaluate_grounding

    result = evaluate_grounding(str(run_dir / "stage3"), str(synth / "heldout"), limit=60)
    b2c, c2b, gen = result["box_to_caption"], result["caption_to_box_match"], result["caption_to_box"]
    assert b2c["n"] >= 40 and gen["n"] >= 80
    # Baselines: chance among the image's own regions (~0.36 here) for the two matching tasks, and
    # the best constant box (the mean box) for generated boxes.
    assert b2c["acc"] >= b2c["baseline_chance"] + 0.15, result
    assert c2b["acc"] >= c2b["baseline_chance"] + 0.15, result
    assert gen["mean_iou"] >= max(0.08, 5 * gen["baseline_mean_box_mean_iou"]), result
