"""Zero-shot image-text retrieval of a stage II checkpoint: Recall@1/5/10 in both directions.

Each row contributes one image and two captions: its shortest and its longest global caption
(for FineCap data, a brief caption and the detailed recaption), scored as two separate
retrieval problems. Images use the resolution and text length the checkpoint last trained at.
"""

from __future__ import annotations

from pathlib import Path

import torch

from finecap.train.patches import decode_image, pack, patchify
from finecap.train.shards import iter_all_rows
from finecap.train.tokens import encode_batch

KS = (1, 5, 10)


def recall_at_k(similarity: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Query i's match is item i; R@k is the fraction of queries whose match ranks in the top k."""
    true = similarity.diagonal().unsqueeze(1)
    rank = (similarity > true).sum(dim=1)
    return {f"r{k}": float((rank < k).float().mean()) for k in ks}


def load_contrastive(checkpoint: str | Path):
    """(model, tokenizer, meta) of a stage II checkpoint (a checkpoint dir or a stage dir)."""
    from finecap.train.evaluate_common import checkpoint_config
    from finecap.train.stage2 import build_contrastive

    path, config, meta = checkpoint_config(checkpoint, "stage2")
    model, tokenizer = build_contrastive(config, None, path)
    return model.eval(), tokenizer, meta


@torch.no_grad()
def embed_rows(model, tokenizer, rows: list[dict], resolution: int, text_length: int) -> dict[str, torch.Tensor]:
    images = pack([patchify(decode_image(r["image"]["bytes"]), resolution * resolution) for r in rows])
    out = {"image": model.encode_image(images)}
    for name, pick in (("short", min), ("long", max)):
        texts = [pick((c["text"] for c in r["captions"] if c.get("text")), key=len) for r in rows]
        tokens = encode_batch(tokenizer, texts, text_length)
        out[name] = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
    return out


def evaluate_retrieval(checkpoint: str, data: str, limit: int | None = None, batch_size: int = 64) -> dict:
    """Recall@1/5/10 image->text and text->image, short and long captions, over the rows of `data`."""
    model, tokenizer, meta = load_contrastive(checkpoint)
    parts: dict[str, list[torch.Tensor]] = {"image": [], "short": [], "long": []}
    batch: list[dict] = []
    rows = (r for r in iter_all_rows(data, ("key", "image", "captions"), limit) if any(
        c.get("text") for c in r.get("captions") or []))
    for row in rows:
        batch.append(row)
        if len(batch) == batch_size:
            for k, v in embed_rows(model, tokenizer, batch, meta["resolution"], meta["text_length"]).items():
                parts[k].append(v)
            batch = []
    if batch:
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
