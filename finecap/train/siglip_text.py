"""SigLIP / SigLIP2 text encoders through transformers' own classes, and their longer context.

Why this module: `AutoModel` has no entry for a `siglip_text_model` config, and for a full
`siglip` / `siglip2` checkpoint it builds the two-tower model, whose forward wants images. The
text model classes load either (from a full checkpoint they keep `text_model.*` and drop the
vision tower). The released SigLIP2 checkpoints at fixed resolutions (e.g.
`google/siglip2-so400m-patch14-384`) say `model_type: siglip`; only the NaFlex ones say `siglip2`.

SigLIP was trained on text padded to 64 tokens with no attention mask, its pooled output taken
at the last position (`SiglipTextModel.pooler_output`: final norm, last token, head). FineCap
keeps that: SigLIP tokenizers are marked fixed-length (finecap.train.tokens.encode_batch pads
them to the phase's text length with their EOS) and the encoder sees no mask.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

# config model_type -> transformers text model class
TEXT_CLASSES = {
    "siglip": "SiglipTextModel",
    "siglip_text_model": "SiglipTextModel",
    "siglip2": "Siglip2TextModel",
    "siglip2_text_model": "Siglip2TextModel",
}
TEXT_MODEL_TYPES = {"siglip_text_model", "siglip2_text_model"}


def text_class(model_type: str) -> type[PreTrainedModel] | None:
    """The SigLIP text model class for a config's model_type; None for any other model."""
    name = TEXT_CLASSES.get(model_type)
    if name is None:
        return None
    import transformers

    return getattr(transformers, name)


def is_siglip_text(encoder: nn.Module) -> bool:
    config = getattr(encoder, "config", None)
    return getattr(config, "model_type", None) in TEXT_MODEL_TYPES


def positions(encoder: PreTrainedModel) -> int:
    return encoder.embeddings.position_embedding.num_embeddings


def extend_positions(encoder: PreTrainedModel, length: int, generator: torch.Generator | None = None) -> int:
    """Grow a SigLIP text encoder's learned position table to `length` rows; returns the rows it had.

    The trained rows stay where they are, so text up to the old length encodes exactly as
    before (a frozen tower stays the pretrained model); the new rows start random at the trained
    rows' scale. That is how a published SigLIP2 so400m 64 -> 256 token fine-tune extended its
    table (fancyfeast/so400m-long), and interpolating instead would move every trained position.
    """
    table = encoder.embeddings.position_embedding
    have = table.num_embeddings
    if length <= have:
        return have
    grown = nn.Embedding(length, table.embedding_dim, device=table.weight.device, dtype=table.weight.dtype)
    with torch.no_grad():
        grown.weight[:have] = table.weight
        fresh = torch.randn(length - have, table.embedding_dim, generator=generator)
        grown.weight[have:] = (fresh * table.weight.std()).to(grown.weight)
    encoder.embeddings.position_embedding = grown
    ids = torch.arange(length, device=table.weight.device).expand((1, -1))
    encoder.embeddings.register_buffer("position_ids", ids, persistent=False)
    encoder.config.max_position_embeddings = length
    return have
