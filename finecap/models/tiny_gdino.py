"""Tiny random-weight Grounding DINO, built offline.

The detect stage runs Grounding DINO through transformers; this tiny copy lets the
embedded default and the tests run that exact code path on CPU in milliseconds. Its
boxes are random. The same seed gives byte-identical files.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    GroundingDinoConfig,
    GroundingDinoForObjectDetection,
    GroundingDinoImageProcessorPil,
    GroundingDinoProcessor,
    PreTrainedTokenizerFast,
)

from finecap.models.corpus import corpus
from finecap.models.quiet import quiet_transformers

# Grounding DINO hard-codes these bert-base-uncased ids (its text masks look for them).
FIXED_IDS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}
FIRST_FREE_ID = 104
MAX_TEXT_LEN = 256
# Detection inputs are resized to at most 640 px: the tiny model is fast and boxes are random anyway.
SHORTEST_EDGE, LONGEST_EDGE = 480, 640


def wordpiece_vocab() -> list[str]:
    """bert-style vocab: fixed ids where the model expects them, single characters so every
    word tokenizes, and the corpus's words whole; unused slots are filled like BERT's."""
    pieces = [c for c in string.punctuation if c not in ".?"]
    pieces += list(string.digits + string.ascii_lowercase)
    pieces += ["##" + c for c in string.digits + string.ascii_lowercase]
    words = sorted({w for line in corpus() for w in re.findall(r"[a-z0-9]+", line.lower())} - set(pieces))
    size = max(max(FIXED_IDS) + 1, FIRST_FREE_ID + len(pieces) + len(words))
    vocab: list[str | None] = [None] * size
    for i, token in FIXED_IDS.items():
        vocab[i] = token
    free = (i for i in range(FIRST_FREE_ID, size) if vocab[i] is None)
    for token in pieces + words:
        vocab[next(free)] = token
    unused = (f"[unused{n}]" for n in range(size))
    return [token if token is not None else next(unused) for token in vocab]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Uncased WordPiece tokenizer with BERT's normalisation and [CLS] ... [SEP] framing."""
    vocab = wordpiece_vocab()
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 101), ("[SEP]", 102)],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length=MAX_TEXT_LEN,
    )


def model_config(vocab_size: int) -> GroundingDinoConfig:
    """A few hundred thousand parameters; decoder_layers must be >= 2 (weight tying breaks with 1)."""
    backbone = {
        "model_type": "swin",
        "image_size": 224,
        "patch_size": 4,
        "embed_dim": 16,
        "depths": [1, 1, 1, 1],
        "num_heads": [1, 1, 2, 2],
        "window_size": 7,
        "out_features": ["stage2", "stage3", "stage4"],
    }
    text = {
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "max_position_embeddings": MAX_TEXT_LEN,
    }
    return GroundingDinoConfig(
        backbone_config=backbone,
        use_pretrained_backbone=False,
        use_timm_backbone=False,
        text_config=text,
        d_model=64,
        num_queries=100,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_feature_levels=4,
        max_text_len=MAX_TEXT_LEN,
    )


def build_tiny_grounding_dino(out_dir: Path, seed: int) -> Path:
    """Write model (safetensors), processor and tokenizer to `out_dir`; return it.

    Loads with `AutoModelForZeroShotObjectDetection` and `AutoProcessor` from `out_dir`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    image_processor = GroundingDinoImageProcessorPil(
        size={"shortest_edge": SHORTEST_EDGE, "longest_edge": LONGEST_EDGE}
    )
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    with torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG alone
        torch.manual_seed(seed)
        model = GroundingDinoForObjectDetection(model_config(len(tokenizer))).eval()
    with quiet_transformers():
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
    return out_dir
