"""Stage II's region term: each sampled region's box-pooled patch features against its own text.

Why it exists: the global SigLIP loss alone taught the data engine's tiny encoder no shape. On
the synthetic scenes a linear probe from the mean of the tokens inside each true box to its
shape (8 classes, chance 0.125) scored 0.13 after 200 stage II steps (0.22 after stage I alone),
and stage III's language model then ignored the image (caption loss 1.30 with each scene's own
image, 1.32 with another scene's). A global caption names every object at once; a region's text
names one, and the pooled tokens are the ones inside its box, so the gradient reaches exactly the
patches that show it: the same probe scored 0.25 with caption texts and 0.29 with category texts
after the same 200 steps (docs/training.md, "The data engine"). Region-text contrast is the idea
of RegionCLIP and FG-CLIP; FineCap rows carry the regions it needs. Off by default
(`stage2.regions.weight: 0`), as in the paper's stage II.

The text of a region is its `caption`, its noun `phrase` or its detector `category`
(`stage2.regions.text`). With captions the contrast can be won by colour, size and position,
which the scene captions also name, so the shape gets less of the gradient; a category text
leaves nothing but the shape to match. The term reuses the image side's attention
pool and the shared SigLIP temperature and bias. Every region text of the batch (all ranks)
equal to a region's own is a positive, every other one a negative: eight categories repeat many
times in one batch, and a repeated text is no negative.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from finecap.train import distributed as D
from finecap.train.patches import PackedImages
from finecap.train.tasks import captioned_regions, regions_with

Region = tuple[tuple[float, float, float, float], str]  # (normalised box, its text)


def sample_regions(row: dict, k: int, rng: np.random.Generator, text: str = "caption") -> list[Region]:
    """Up to `k` of the row's detector regions with their `text` field; captions must be unique in
    the image (as the stage III tasks ask), phrases and categories may repeat."""
    if text == "caption":
        regions = captioned_regions(row)
    else:
        regions = regions_with(row, "detector", text)
    if len(regions) > k:
        regions = [regions[i] for i in sorted(rng.choice(len(regions), size=k, replace=False))]
    return [(tuple(float(v) for v in r["bbox"]), r[text]) for r in regions]


def region_batch(per_image: list[list[Region]]) -> tuple[list[str], dict[str, torch.Tensor]]:
    """(texts, tensors): each region's text, and its image's index in the batch, box [N, 4] and text key."""
    texts = [text for regions in per_image for _, text in regions]
    image = [i for i, regions in enumerate(per_image) for _ in regions]
    boxes = [box for regions in per_image for box, _ in regions]
    return texts, {"region_image": torch.tensor(image, dtype=torch.long),
                   "region_boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                   "region_text_key": torch.tensor([text_key(t) for t in texts], dtype=torch.long)}


def text_key(text: str) -> int:
    """A 63-bit key of a text, equal on every rank and every run (Python's hash() is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def region_text_loss(region_emb: torch.Tensor, text_emb: torch.Tensor, keys: torch.Tensor, scale: torch.Tensor,
                     bias: torch.Tensor, d: D.Dist) -> torch.Tensor:
    """SigLIP's sigmoid loss where every text equal to a region's own is its positive.

    `text_emb` [N, D] and `keys` [N] are region i's text; the texts of every rank are gathered (a
    collective: every rank calls this, also with N = 0). Normalised by the number of regions.
    """
    texts, valid, _ = D.gather_with_grad(text_emb, d)
    gathered = keys.tolist()
    if d.enabled:
        per_rank = D.gather_objects(gathered, d)
        n_max = max(len(k) for k in per_rank)
        gathered = [key for k in per_rank for key in k + [-1] * (n_max - len(k))]
    all_keys = torch.tensor(gathered, dtype=torch.long, device=keys.device)
    if region_emb.shape[0] == 0:
        return region_emb.sum() + texts.sum() * 0.0  # nothing to match; the graph still reaches the texts
    logits = region_emb.float() @ texts.float().t() * scale.exp() + bias
    labels = torch.where(keys.unsqueeze(1) == all_keys.unsqueeze(0), 1.0, -1.0)
    pair_loss = -F.logsigmoid(labels * logits) * valid.to(logits.dtype).unsqueeze(0)
    return pair_loss.sum() / region_emb.shape[0]


def box_members(images: PackedImages, region_image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(token index, region index) pairs: the unpacked tokens whose patch centre lies in each box.

    A box smaller than a patch still pools one token, the one whose centre is nearest the box's.
    """
    positions = images.positions.reshape(-1, 2)[images.token_index].to(boxes.dtype)  # [T, 2] (row, col)
    ids = images.image_ids()
    grid = torch.zeros(images.num_images, 2, dtype=boxes.dtype, device=boxes.device)
    grid = grid.scatter_reduce(0, ids.unsqueeze(1).expand(-1, 2), positions + 1, "amax")
    centre = (positions + 0.5) / grid[ids]  # [T, 2] (y, x) in [0, 1]
    y, x = centre[:, 0].unsqueeze(0), centre[:, 1].unsqueeze(0)
    x1, y1, x2, y2 = (boxes[:, i].unsqueeze(1) for i in range(4))
    same = ids.unsqueeze(0) == region_image.unsqueeze(1)  # [N, T]
    inside = same & (x >= x1) & (x < x2) & (y >= y1) & (y < y2)
    distance = ((x - (x1 + x2) / 2) ** 2 + (y - (y1 + y2) / 2) ** 2).masked_fill(~same, torch.inf)
    nearest = torch.zeros_like(inside).scatter_(1, distance.argmin(1, keepdim=True), True)
    members = torch.where(inside.any(1, keepdim=True), inside, nearest)
    region, token = members.nonzero(as_tuple=True)
    return token, region
