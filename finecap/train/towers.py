"""Text tower (stage II), causal LM and projector (stage III), from transformers configs.

`tiny` towers are built here with random weights and the locally trained tokenizer, so CPU runs
need no download; anything else is a hub name or path loaded with `from_pretrained` (e.g. a
BERT-style or SigLIP / SigLIP2 text encoder for stage II, Qwen3 for stage III). Towers are saved
with `save_pretrained` so a checkpoint's LM loads with plain transformers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from finecap.train.config import TowerConfig
from finecap.train.patches import PackedImages
from finecap.train.siglip_text import is_siglip_text, text_class
from finecap.train.tokens import FIXED_LENGTH, IMAGE_PAD, MULTIMODAL_TOKENS, ensure_tokens, token_id
from finecap.train.vit import MERGE, FineViT
from finecap.typed_config import ConfigError

MAX_TEXT_POSITIONS = 1024


def _quiet():
    from transformers.utils import logging

    logging.set_verbosity_error()


def build_text_encoder(cfg: TowerConfig, tokenizer: PreTrainedTokenizerBase | None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A bidirectional encoder: tiny ModernBERT on the local tokenizer, or a pretrained model and its tokenizer.

    ModernBERT rather than BERT for the tiny tower: BERT adds one shared token-type vector to
    every token, which makes all mean-pooled captions nearly parallel at init (cos ~0.96 here)
    and stalls contrastive learning from scratch for a hundred steps; ModernBERT (RoPE, no
    token types) starts spread out (cos ~0.5).
    """
    from transformers import ModernBertConfig, ModernBertModel

    _quiet()
    if cfg.model != "tiny":
        from finecap.train.tokens import load_tokenizer

        encoder = load_text_encoder(cfg.model, cfg.trust_remote_code)
        return encoder, text_tokenizer(encoder, load_tokenizer(cfg.model, cfg.trust_remote_code))
    if tokenizer is None:
        raise ValueError("a tiny text tower needs the local tokenizer")
    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate_size,
        max_position_embeddings=MAX_TEXT_POSITIONS, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        cls_token_id=tokenizer.bos_token_id, sep_token_id=tokenizer.eos_token_id,
    )
    return ModernBertModel(config), tokenizer


def build_causal_lm(cfg: TowerConfig, tokenizer: PreTrainedTokenizerBase | None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A decoder-only LM with the multimodal tokens in its vocabulary (added if a pretrained one lacks them)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    _quiet()
    if cfg.model != "tiny":
        from finecap.train.tokens import load_tokenizer

        model = AutoModelForCausalLM.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
        tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
        if ensure_tokens(tokenizer, MULTIMODAL_TOKENS) or len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        return model, tokenizer
    if tokenizer is None:
        raise ValueError("a tiny LM needs the local tokenizer")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads, intermediate_size=cfg.intermediate_size,
        max_position_embeddings=4096, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config), tokenizer


def load_text_encoder(name_or_path: str | Path, trust_remote_code: bool = False) -> PreTrainedModel:
    """`AutoModel`, except that a SigLIP / SigLIP2 checkpoint (full or text-only) gives its text model."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    siglip = text_class(config.model_type)
    if siglip is not None:
        return siglip.from_pretrained(name_or_path)
    return AutoModel.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)


def text_tokenizer(encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Mark a SigLIP encoder's tokenizer fixed-length: SigLIP was trained on text padded to its length."""
    if is_siglip_text(encoder):
        setattr(tokenizer, FIXED_LENGTH, True)
    return tokenizer


def load_pretrained(path: Path, causal: bool) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A tower written by `save_pretrained` into a checkpoint (its tokenizer beside it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet()
    if causal:
        return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    encoder = load_text_encoder(path)
    return encoder, text_tokenizer(encoder, AutoTokenizer.from_pretrained(path))


def hidden_size(model: PreTrainedModel) -> int:
    return model.get_input_embeddings().embedding_dim


def resolve_pooling(encoder: PreTrainedModel, pooling: str) -> str:
    """`auto` -> `model` for SigLIP text encoders, `mean` otherwise; `model` must exist for the encoder."""
    if pooling == "auto":
        return "model" if is_siglip_text(encoder) else "mean"
    if pooling == "model" and not is_siglip_text(encoder):
        with torch.no_grad():  # one token: the only truthful test of whether a pooled output exists
            probe = encoder(input_ids=torch.zeros((1, 1), dtype=torch.long, device=encoder.device))
        if getattr(probe, "pooler_output", None) is None:
            raise ConfigError(f"model.text.pooling: 'model' needs an encoder with a pooled output; "
                              f"{type(encoder).__name__} has none (use mean, cls or last)")
    return pooling


def pooled_width(encoder: PreTrainedModel, pooling: str) -> int:
    """SigLIP's head maps to `projection_size`; every other pooled vector has the hidden width."""
    if pooling == "model":
        return getattr(encoder.config, "projection_size", None) or hidden_size(encoder)
    return hidden_size(encoder)


class TextTower(nn.Module):
    """Encoder + pooling + linear projection into the shared embedding space."""

    def __init__(self, encoder: PreTrainedModel, pooling: str, embed_dim: int) -> None:
        super().__init__()
        self.encoder, self.pooling = encoder, resolve_pooling(encoder, pooling)
        # SigLIP attended over its padding in training (no mask), so it gets none here either.
        self.masked = not is_siglip_text(encoder)
        # No bias: a shared offset would let all texts collapse together.
        self.proj = nn.Linear(pooled_width(encoder, self.pooling), embed_dim, bias=False)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled text vector before the projection ([B, pooled_width])."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask if self.masked else None)
        if self.pooling == "model":
            return out.pooler_output
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "last":
            last = attention_mask.sum(1) - 1
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(input_ids, attention_mask))


class Projector(nn.Module):
    """2-layer MLP from merged 2x2 patch windows to the LM's width (Qwen2-VL's merger)."""

    def __init__(self, vision_width: int, lm_width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(vision_width)
        self.fc1 = nn.Linear(MERGE * MERGE * vision_width, lm_width)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(lm_width, lm_width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[T, Dv] in 2x2-window order -> [T / 4, Dl]."""
        merged = self.norm(tokens).reshape(-1, MERGE * MERGE * tokens.shape[-1])
        return self.fc2(self.act(self.fc1(merged)))


class VisionLanguageModel(nn.Module):
    """FineViT -> projector -> causal LM; image features replace the `<|image_pad|>` tokens."""

    def __init__(self, vision: FineViT, projector: Projector, lm: PreTrainedModel, image_token_id: int) -> None:
        super().__init__()
        self.vision, self.projector, self.lm = vision, projector, lm
        self.image_token_id = image_token_id

    @classmethod
    def assemble(cls, vision: FineViT, lm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 projector: Projector | None = None) -> VisionLanguageModel:
        projector = projector or Projector(vision.width, hidden_size(lm))
        return cls(vision, projector, lm, token_id(tokenizer, IMAGE_PAD))

    def image_tokens(self, images: PackedImages) -> torch.Tensor:
        """[sum(T_i / 4), Dl]: LM-space tokens of every image, image after image."""
        return self.projector(images.unpack(self.vision(images.pixels, images.positions, images.segments)))

    def embed(self, images: PackedImages, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embed_with(self.image_tokens(images), input_ids)

    def embed_with(self, visual: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Text embeddings with `visual` written over the `<|image_pad|>` slots, in order."""
        embeds = self.lm.get_input_embeddings()(input_ids)
        slots = input_ids == self.image_token_id
        if int(slots.sum()) != visual.shape[0]:
            raise ValueError(f"{int(slots.sum())} image tokens in the text but {visual.shape[0]} image features")
        return embeds.masked_scatter(slots.unsqueeze(-1), visual.to(embeds.dtype))

    def forward(self, images: PackedImages, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embeds = self.embed(images, input_ids)
        return self.lm(inputs_embeds=embeds, attention_mask=attention_mask).logits
