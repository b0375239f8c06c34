"""SigLIP text encoders load through their own classes; a longer context keeps the trained positions."""

from __future__ import annotations

import torch
from transformers import ModernBertConfig, ModernBertModel, Siglip2TextModel, SiglipTextModel

from finecap.train.siglip_text import extend_positions, is_siglip_text, positions, text_class
from finecap.train.tokens import FIXED_LENGTH, encode_batch
from finecap.train.towers import load_text_encoder

from .tiny_siglip import write_tiny_siglip


def test_text_classes_cover_full_and_text_only_configs():
    assert text_class("siglip") is text_class("siglip_text_model") is SiglipTextModel
    assert text_class("siglip2") is text_class("siglip2_text_model") is Siglip2TextModel
    assert text_class("bert") is None
    tiny_bert = ModernBertModel(ModernBertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                 intermediate_size=32, pad_token_id=0, bos_token_id=1,
                                                 eos_token_id=2, cls_token_id=1, sep_token_id=2))
    assert not is_siglip_text(tiny_bert)


def test_extended_context_keeps_trained_rows_and_round_trips(tmp_path):
    source = write_tiny_siglip(tmp_path / "src", "siglip", positions=16)
    encoder = load_text_encoder(tmp_path / "src")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "src")
    setattr(tokenizer, FIXED_LENGTH, True)
    short = encode_batch(tokenizer, ["two green triangles"], 16)["input_ids"]

    assert extend_positions(encoder, 24) == 16 and positions(encoder) == 24
    table = encoder.embeddings.position_embedding.weight.detach()
    trained = source.embeddings.position_embedding.weight.detach()
    assert torch.equal(table[:16], trained)
    new_std = float(table[16:].std())
    assert 0.3 * float(trained.std()) < new_std < 3 * float(trained.std())
    with torch.no_grad():  # text within the old length encodes exactly as the pretrained model does
        assert torch.allclose(encoder(input_ids=short).pooler_output, source(input_ids=short).pooler_output)
        long = torch.randint(5, 300, (2, 24))
        assert encoder(input_ids=long).pooler_output.shape == (2, 24)

    encoder.save_pretrained(tmp_path / "out")
    again = load_text_encoder(tmp_path / "out")
    assert again.config.max_position_embeddings == 24
    assert torch.equal(again.embeddings.position_embedding.weight, table)
    assert extend_positions(again, 20) == 24 and positions(again) == 24  # never shrinks
