"""Batching and token counting shared by the evaluation protocols."""

from __future__ import annotations

import pytest

from finecap.errors import UserError
from finecap.train.embedding import Encoder, batched, token_counts
from finecap.train.tokens import encode_batch, train_tiny_tokenizer


def test_batched_keeps_order_and_a_short_last_batch():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched(iter([]), 4)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(batched(range(3), 0))


def test_token_counts_are_what_encode_batch_would_keep_untruncated():
    texts = ["a red circle at the top left", "two shapes", "a large blue square near the centre of the image " * 4]
    tokenizer = train_tiny_tokenizer(texts * 10, vocab_size=300)
    counts = token_counts(tokenizer, texts)
    lengths = encode_batch(tokenizer, texts, max_length=10_000)["attention_mask"].sum(1).tolist()
    assert counts == lengths
    cut = encode_batch(tokenizer, texts, max_length=8)["attention_mask"].sum(1).tolist()
    assert cut == [min(c, 8) for c in counts]


def test_a_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"^--checkpoint: no stage2 checkpoint at "):
        Encoder.load(tmp_path / "absent")
