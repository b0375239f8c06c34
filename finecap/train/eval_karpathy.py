"""COCO / Flickr30k retrieval on a Karpathy split (`finecap eval retrieval --protocol karpathy`).

The split file is Karpathy's `dataset_coco.json` / `dataset_flickr30k.json`:
`{"images": [{"filepath", "filename", "split", "sentences": [{"raw"}, ...]}, ...]}`; the test
split is COCO's 5k images (~25k captions) or Flickr30k's 1k images (5k captions). Every caption
is a text query for its image; an image query is correct at k when ANY of its captions ranks in
the top k (`grouped_recall_at_k`), the convention of the published numbers.

Image paths: `--images` + `filepath` + `filename` (COCO: `val2014/COCO_val2014_...jpg`), or
`--images` + `filename` when the split has no `filepath` (Flickr30k) or the images lie flat.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from finecap import storage
from finecap.train.embedding import Encoder
from finecap.train.eval_inputs import EvalInputError, check_present, load_images, read_json, resolve
from finecap.train.eval_retrieval import grouped_recall_at_k


@dataclass(frozen=True)
class CaptionedImages:
    """Images and their captions; `text_image[t]` is the index of caption t's image."""

    uris: list[str]
    texts: list[str]
    text_image: list[int]


def read_karpathy(uri: str, images: str, split: str, limit: int | None = None,
                  max_captions: int | None = None) -> CaptionedImages:
    """The images of one split (first `limit`), each with its first `max_captions` captions (default all)."""
    data = read_json(uri, "--karpathy")
    entries = data.get("images") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise EvalInputError(f"--karpathy {uri}: expected {{\"images\": [...]}} (Karpathy's dataset_*.json)")
    chosen = [e for e in entries if isinstance(e, dict) and e.get("split") == split][:limit]
    if not chosen:
        splits = sorted({str(e.get("split")) for e in entries if isinstance(e, dict)})
        raise EvalInputError(f"--karpathy {uri}: no images in split {split!r} (splits: {', '.join(splits)})")
    nested = _nested_layout(images, chosen[0])
    uris, texts, owner = [], [], []
    for i, entry in enumerate(chosen):
        if not entry.get("filename"):
            raise EvalInputError(f"--karpathy {uri}: image {i} of split {split!r} has no filename")
        captions = [s.get("raw", "").strip() for s in entry.get("sentences") or [] if isinstance(s, dict)]
        captions = [c for c in captions if c][:max_captions]
        if not captions:
            raise EvalInputError(f"--karpathy {uri}: image {entry['filename']} has no sentences with a raw caption")
        uris.append(_image_uri(images, entry, nested))
        texts += captions
        owner += [i] * len(captions)
    return CaptionedImages(uris, texts, owner)


def _image_uri(root: str, entry: dict, nested: bool) -> str:
    path = f"{entry['filepath']}/{entry['filename']}" if nested and entry.get("filepath") else entry["filename"]
    return resolve(root, path)


def _nested_layout(root: str, first: dict) -> bool:
    """Whether images lie under their `filepath` folder (decided once, on the first image)."""
    return bool(first.get("filepath")) and storage.exists(_image_uri(root, first, nested=True))


def evaluate_karpathy(checkpoint: str, karpathy: str, images: str, split: str = "test", limit: int | None = None,
                      max_captions: int | None = None, batch_size: int = 64) -> dict:
    """R@1/5/10 image -> text and text -> image at the checkpoint's resolution and text length."""
    if max_captions is not None and max_captions < 1:
        raise EvalInputError(f"--max-captions must be at least 1, got {max_captions}")
    pairs = read_karpathy(karpathy, images, split, limit, max_captions)
    check_present(pairs.uris, "--images")
    encoder = Encoder.load(checkpoint)
    image_emb = encoder.images(load_images(pairs.uris), batch_size)
    text_emb = encoder.texts(pairs.texts, encoder.text_length, batch_size)
    recall = grouped_recall_at_k(image_emb @ text_emb.t(), torch.tensor(pairs.text_image))
    return {
        "task": "retrieval", "protocol": "karpathy", "checkpoint": str(checkpoint), "karpathy": karpathy,
        "images": images, "split": split, "n_images": len(pairs.uris), "n_texts": len(pairs.texts), **recall,
        "resolution": encoder.resolution, "text_length": encoder.text_length,
        "captions": encoder.truncation(pairs.texts, encoder.text_length),
    }
