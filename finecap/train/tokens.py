"""Tokenizers: a tiny byte-level BPE trained on the dataset's own texts, or any transformers tokenizer.

Why train one: the tiny towers must work offline and learn in CPU minutes; a 512-piece vocabulary
fitted to the captions keeps sequences short and embeddings small. Digits are split one per
token (as Qwen's tokenizer does), so box coordinates are spelled the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from finecap.box_format import BOX_END, BOX_START

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
IMAGE_PAD, VISION_START, VISION_END = "<|image_pad|>", "<|vision_start|>", "<|vision_end|>"
MULTIMODAL_TOKENS = [IMAGE_PAD, VISION_START, VISION_END, BOX_START, BOX_END]
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS, *MULTIMODAL_TOKENS]


def row_texts(row: dict) -> list[str]:
    """Every text of a finecap row: global captions, region phrases and captions, OCR text."""
    texts = [c["text"] for c in row.get("captions") or [] if c.get("text")]
    for region in row.get("regions") or []:
        texts.extend(t for t in (region.get("phrase"), region.get("caption"), region.get("ocr_text")) if t)
    return texts


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (any text encodes) with one token per digit; deterministic for the same texts."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
        additional_special_tokens=MULTIMODAL_TOKENS, model_max_length=4096,
    )


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)


def ensure_tokens(tokenizer: PreTrainedTokenizerBase, tokens: list[str]) -> int:
    """Add the special tokens a pretrained tokenizer lacks; returns how many were added."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return len(missing)


# Set on a tokenizer whose encoder was trained on fixed-length text (SigLIP's: its special tokens,
# padded to the text length, pooled at the last position); finecap.train.towers marks them.
FIXED_LENGTH = "finecap_fixed_length"


def encode_batch(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Pad to the longest text, truncate at `max_length` (the curriculum's text length).

    A fixed-length tokenizer pads every text to `max_length` and adds its own special tokens
    (SigLIP's EOS), so a text's embedding never depends on the other texts of its batch.
    """
    fixed = bool(getattr(tokenizer, FIXED_LENGTH, False))
    out = tokenizer(texts, padding="max_length" if fixed else "longest", truncation=True, max_length=max_length,
                    return_tensors="pt", add_special_tokens=fixed, return_attention_mask=True)
    return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    ids = tokenizer.convert_tokens_to_ids(token)
    if ids is None or ids == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no {token!r} token")
    return ids
