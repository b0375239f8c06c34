"""Losses, apart from the models and the loops (open_clip's split): plain functions of tensors.

- stage I: L2 between predicted and teacher patch features at the masked positions;
- stage II: SigLIP's pairwise sigmoid loss with learnable temperature and bias;
- stage III: next-token cross-entropy on answer tokens only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def masked_feature_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over masked tokens; pred/target [T, D], mask [T] bool.

    Targets are layer-normalised per token (as MAE's normalised-pixel target), so the loss
    does not depend on the teacher's feature scale.
    """
    if not bool(mask.any()):
        raise ValueError("no masked token in the batch")
    target = F.layer_norm(target.float(), target.shape[-1:])
    return (pred.float()[mask] - target[mask]).pow(2).mean()


def siglip_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor,
    text_valid: torch.Tensor | None = None,
    positive_offset: int = 0,
) -> torch.Tensor:
    """Sigmoid loss of SigLIP: every image-text pair is a binary match / no-match problem.

    image_emb [B, D] and text_emb [N, D] are L2-normalised; image i's caption is text
    `positive_offset + i` (texts gathered from other ranks sit around the local ones).
    `logit_scale` is the log temperature t'; `text_valid` [N] drops padding texts.
    Normalised by the number of images, as in the paper.
    """
    logits = image_emb.float() @ text_emb.float().t() * logit_scale.exp() + logit_bias
    labels = -torch.ones_like(logits)
    idx = torch.arange(image_emb.shape[0], device=logits.device)
    labels[idx, idx + positive_offset] = 1.0
    pair_loss = -F.logsigmoid(labels * logits)
    if text_valid is not None:
        pair_loss = pair_loss * text_valid.to(pair_loss.dtype).unsqueeze(0)
    return pair_loss.sum() / image_emb.shape[0]


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Causal LM loss: logits [B, S, V] predict labels shifted by one; IGNORE (-100) masks prompts."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                           ignore_index=IGNORE)
