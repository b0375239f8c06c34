"""Tiny random SigLIP / SigLIP2 text encoders written to disk, as a hub checkpoint would be.

Built locally (no download): the finecap tiny tokenizer, given SigLIP's convention of an EOS
after every text, and a random transformers model saved with `save_pretrained` beside it.
`siglip` writes a text-only `siglip_text_model`; `siglip2` writes a whole two-tower
`Siglip2Model`, whose text half the text-tower path must pick out.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers.processors import TemplateProcessing

from finecap.train.tokens import EOS, train_tiny_tokenizer

TEXTS = ["a red square above a blue circle", "two green triangles", "the word STOP on a sign",
         "a small yellow star next to a large purple square"] * 20
POSITIONS = 32


def tiny_siglip_tokenizer(vocab_size: int = 320):
    tokenizer = train_tiny_tokenizer(TEXTS, vocab_size)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, eos)])
    return tokenizer


def write_tiny_siglip(path: Path, kind: str, positions: int = POSITIONS):
    """Save a tiny random `kind` ("siglip" | "siglip2") model and its tokenizer at `path`; returns the model."""
    from transformers import Siglip2Config, Siglip2Model, SiglipTextConfig, SiglipTextModel

    tokenizer = tiny_siglip_tokenizer()
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=positions, projection_size=24,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id)
    if kind == "siglip":
        model = SiglipTextModel(SiglipTextConfig(**text))
    elif kind == "siglip2":
        vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
        model = Siglip2Model(Siglip2Config(text_config=text, vision_config=vision))
    else:
        raise ValueError(kind)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model.eval()
