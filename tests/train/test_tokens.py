from finecap.train.tokens import (
    BOX_START,
    IMAGE_PAD,
    encode_batch,
    ensure_tokens,
    row_texts,
    token_id,
    train_tiny_tokenizer,
)


def _tok():
    return train_tiny_tokenizer(["a red circle in the top left", "the word 'garden' in black"] * 20, 320)


def test_tiny_tokenizer_spells_digits_and_keeps_special_tokens_whole():
    tok = _tok()
    pieces = tok.tokenize(f"{BOX_START}(120,345)")
    assert pieces == [BOX_START, "(", "1", "2", "0", ",", "3", "4", "5", ")"]
    assert len(tok(IMAGE_PAD * 3, add_special_tokens=False)["input_ids"]) == 3
    assert tok.decode(tok("a red circle", add_special_tokens=False)["input_ids"]) == "a red circle"


def test_tiny_tokenizer_is_deterministic():
    assert _tok().get_vocab() == _tok().get_vocab()


def test_encode_batch_truncates_to_the_curriculum_length():
    batch = encode_batch(_tok(), ["a red circle in the top left " * 10, "a"], max_length=16)
    assert batch["input_ids"].shape == (2, 16)
    assert batch["attention_mask"][1].sum() == 1


def test_ensure_tokens_adds_only_missing_ones():
    tok = _tok()
    before = len(tok)
    assert ensure_tokens(tok, [IMAGE_PAD, "<|new|>"]) == 1
    assert len(tok) == before + 1 and token_id(tok, "<|new|>") == before


def test_row_texts_collects_every_text_of_a_row():
    row = {"captions": [{"text": "cap"}], "regions": [{"phrase": "p", "caption": "c", "ocr_text": None}]}
    assert row_texts(row) == ["cap", "p", "c"]
