"""The stage II text tower: SigLIP / SigLIP2 text encoders by path, pooled as SigLIP defines it."""

from __future__ import annotations

import pytest
import torch
from transformers import Siglip2TextModel, SiglipTextModel

from finecap.train.config import TextTowerConfig
from finecap.train.tokens import FIXED_LENGTH, encode_batch
from finecap.train.towers import TextTower, build_text_encoder, load_pretrained
from finecap.typed_config import ConfigError

from .tiny_siglip import TEXTS, tiny_siglip_tokenizer, write_tiny_siglip

CLASSES = {"siglip": SiglipTextModel, "siglip2": Siglip2TextModel}


@pytest.mark.parametrize("kind", ["siglip", "siglip2"])
def test_siglip_text_tower_loads_by_path_and_pools_as_siglip(tmp_path, kind):
    source = write_tiny_siglip(tmp_path / kind, kind)
    reference = source.text_model if kind == "siglip2" else source  # the full model's text half
    encoder, tokenizer = build_text_encoder(TextTowerConfig(model=str(tmp_path / kind)), None)
    assert type(encoder) is CLASSES[kind] and getattr(tokenizer, FIXED_LENGTH)
    tower = TextTower(encoder, "auto", 16).eval()
    assert tower.pooling == "model" and tower.proj.in_features == 24  # SigLIP's head: projection_size

    tokens = encode_batch(tokenizer, ["two green triangles", TEXTS[3]], 12)
    ids = tokens["input_ids"]
    assert ids.shape == (2, 12)  # padded to the text length, not to the longest text
    n = int(tokens["attention_mask"][0].sum())
    assert n < 12 and ids[0, n - 1] == tokenizer.eos_token_id and (ids[0, n:] == tokenizer.pad_token_id).all()
    assert ids[1, -1] == tokenizer.eos_token_id  # truncated, its EOS kept
    with torch.no_grad():
        pooled = tower.pool(ids, tokens["attention_mask"])
        assert torch.allclose(pooled, reference(input_ids=ids).pooler_output, atol=1e-6)
        alone = encode_batch(tokenizer, ["two green triangles"], 12)
        assert torch.allclose(tower.pool(alone["input_ids"], alone["attention_mask"])[0], pooled[0], atol=1e-6)


def test_checkpointed_siglip_tower_reloads_as_its_text_class(tmp_path):
    write_tiny_siglip(tmp_path / "src", "siglip2")
    encoder, tokenizer = build_text_encoder(TextTowerConfig(model=str(tmp_path / "src")), None)
    encoder.save_pretrained(tmp_path / "ckpt")  # what a checkpoint's text/ folder holds
    tokenizer.save_pretrained(tmp_path / "ckpt")
    again, tokenizer_again = load_pretrained(tmp_path / "ckpt", causal=False)
    assert type(again) is Siglip2TextModel and getattr(tokenizer_again, FIXED_LENGTH)
    ids = encode_batch(tokenizer_again, ["a red square"], 10)["input_ids"]
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).pooler_output, encoder(input_ids=ids).pooler_output)


def test_tiny_tower_keeps_mean_pooling_and_refuses_a_pooled_output_it_lacks():
    tokenizer = tiny_siglip_tokenizer()
    cfg = TextTowerConfig(hidden_size=16, layers=1, heads=2, intermediate_size=32)
    encoder, _ = build_text_encoder(cfg, tokenizer)
    assert TextTower(encoder, "auto", 8).pooling == "mean" and not getattr(tokenizer, FIXED_LENGTH, False)
    with pytest.raises(ConfigError, match="model.text.pooling: 'model' needs an encoder with a pooled output"):
        TextTower(encoder, "model", 8)
