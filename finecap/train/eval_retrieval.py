"""Zero-shot image-text retrieval of a stage II checkpoint: Recall@1/5/10 in both directions.

Each row contributes one image and two captions: its shortest and its longest global caption
(for FineCap data, a brief caption and the detailed recaption), scored as two separate
retrieval problems. Images use the resolution and text length the checkpoint last trained at.

The other protocols (`--protocol karpathy`, `eval longtext`) share this file's metrics:
`recall_at_k` when query i's match is item i, `grouped_recall_at_k` when an image has several
captions (a text counts for its image; an image is found at k if ANY of its captions is).
"""

from __future__ import annotations

from pathlib import Path

import torch

from finecap.train.embedding import batched, embed_image_batch, embed_text_batch
from finecap.train.patches import decode_image
from finecap.train.shards import iter_all_rows

KS = (1, 5, 10)


def recall_at_k(similarity: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Query i's match is item i; R@k is the fraction of queries whose match ranks in the top k."""
    true = similarity.diagonal().unsqueeze(1)
    rank = (similarity > true).sum(dim=1)
    return {f"r{k}": float((rank < k).float().mean()) for k in ks}


def grouped_recall_at_k(similarity: torch.Tensor, text_image: torch.Tensor,
                        ks: tuple[int, ...] = KS) -> dict[str, dict[str, float]]:
    """R@k both ways when image i owns the texts t with text_image[t] == i (similarity [I, T]).

    image -> text: an image is found at k when ANY of its texts ranks in its top k (the rank of
    its best-scoring own text); text -> image: each text's query matches its own image. Ties
    count in the query's favour, as in `recall_at_k`. The convention of the COCO / Flickr30k
    Karpathy-split numbers (CLIP, ALIGN, SigLIP; big_vision's image_text_retrieval).
    """
    n_images, n_texts = similarity.shape
    if text_image.shape != (n_texts,):
        raise ValueError(f"text_image has shape {tuple(text_image.shape)}, expected ({n_texts},)")
    if bool((torch.bincount(text_image, minlength=n_images) == 0).any()):
        raise ValueError("every image needs at least one text")
    own = similarity[text_image, torch.arange(n_texts, device=text_image.device)]  # [T] each text with its image
    # Per image the best of its own texts, without an [I, T] mask (COCO 5k x 25k is 0.5 GB a copy in fp32).
    best_own = own.new_full((n_images,), -torch.inf).scatter_reduce(0, text_image, own, "amax")
    image_rank = (similarity > best_own.unsqueeze(1)).sum(dim=1)
    text_rank = (similarity > own.unsqueeze(0)).sum(dim=0)
    return {"image_to_text": {f"r{k}": float((image_rank < k).float().mean()) for k in ks},
            "text_to_image": {f"r{k}": float((text_rank < k).float().mean()) for k in ks}}


def load_contrastive(checkpoint: str | Path):
    """(model, tokenizer, meta) of a stage II checkpoint (a checkpoint dir or a stage dir)."""
    from finecap.train.evaluate_common import checkpoint_config
    from finecap.train.stage2 import build_contrastive

    path, config, meta = checkpoint_config(checkpoint, "stage2")
    model, tokenizer = build_contrastive(config, None, path)
    return model.eval(), tokenizer, meta


@torch.no_grad()
def embed_rows(model, tokenizer, rows: list[dict], resolution: int, text_length: int) -> dict[str, torch.Tensor]:
    out = {"image": embed_image_batch(model, [decode_image(r["image"]["bytes"]) for r in rows], resolution)}
    for name, pick in (("short", min), ("long", max)):
        texts = [pick((c["text"] for c in r["captions"] if c.get("text")), key=len) for r in rows]
        out[name] = embed_text_batch(model, tokenizer, texts, text_length)
    return out


def evaluate_retrieval(checkpoint: str, data: str, limit: int | None = None, batch_size: int = 64) -> dict:
    """Recall@1/5/10 image->text and text->image, short and long captions, over the rows of `data`."""
    model, tokenizer, meta = load_contrastive(checkpoint)
    parts: dict[str, list[torch.Tensor]] = {"image": [], "short": [], "long": []}
    rows = (r for r in iter_all_rows(data, ("key", "image", "captions"), limit) if any(
        c.get("text") for c in r.get("captions") or []))
    for batch in batched(rows, batch_size):
        for k, v in embed_rows(model, tokenizer, batch, meta["resolution"], meta["text_length"]).items():
            parts[k].append(v)
    if not parts["image"]:
        raise ValueError(f"no captioned rows in {data}")
    images = torch.cat(parts["image"])
    result: dict = {"task": "retrieval", "checkpoint": str(checkpoint), "data": data, "n": images.shape[0],
                    "chance_r1": 1.0 / images.shape[0]}
    for name in ("short", "long"):
        texts = torch.cat(parts[name])
        sim = images @ texts.t()
        result[name] = {"image_to_text": recall_at_k(sim), "text_to_image": recall_at_k(sim.t())}
    return result
