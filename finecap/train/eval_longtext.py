"""Long-text retrieval (DCI, Urban-1k, DOCCI): image <-> long caption, R@1/5/10 both ways.

Input is JSON Lines, one image and its long caption a line. Field names follow the benchmarks'
own files so they need no rewriting: the image is `image` (or `image_file`, as DOCCI's
`docci_descriptions.jsonlines` names it, `image_path`, `file_name`, `filename`), the caption
`caption` (or `description`, DOCCI's, `long_caption`, `text`); paths are relative to `--images`.
A `split` field can be filtered on (`--split test` keeps DOCCI's test images).

The text tower reads as many tokens as the checkpoint last trained with (state.json meta
`text_length`: 256 after the paper's 64 -> 256 curriculum), or `--text-length`; the result says
which, and how many captions were cut. Several captions of one image count the Karpathy way.
"""

from __future__ import annotations

import torch

from finecap.train.embedding import Encoder
from finecap.train.eval_inputs import (
    EvalInputError,
    check_present,
    load_images,
    pick_field,
    read_jsonl,
    resolve,
)
from finecap.train.eval_karpathy import CaptionedImages
from finecap.train.eval_retrieval import grouped_recall_at_k

IMAGE_FIELDS = ("image", "image_file", "image_path", "file_name", "filename")
CAPTION_FIELDS = ("caption", "description", "long_caption", "text")


def read_pairs(uri: str, images: str, split: str | None = None, limit: int | None = None) -> CaptionedImages:
    """The (first `limit`) pairs, grouped by image: an image named twice owns both captions."""
    rows = read_jsonl(uri, "--pairs")
    if split is not None:
        if any("split" not in r for r in rows):
            raise EvalInputError(f"--pairs {uri}: --split {split} needs a `split` field on every line")
        rows = [r for r in rows if r["split"] == split]
    rows = rows[:limit]
    if not rows:
        raise EvalInputError(f"--pairs {uri}: no pairs" + (f" in split {split!r}" if split else ""))
    index: dict[str, int] = {}
    texts, owner = [], []
    for number, row in enumerate(rows, start=1):
        where = f"{uri}, pair {number}"
        image = resolve(images, str(pick_field(row, IMAGE_FIELDS, "--pairs", where)))
        caption = pick_field(row, CAPTION_FIELDS, "--pairs", where)
        if not isinstance(caption, str) or not caption.strip():
            raise EvalInputError(f"--pairs {where}: the caption is not a non-empty string")
        owner.append(index.setdefault(image, len(index)))
        texts.append(caption.strip())
    return CaptionedImages(list(index), texts, owner)


def pick_text_length(encoder: Encoder, requested: int | None) -> tuple[int, str]:
    """(length, where it came from): the flag if given, else the checkpoint's trained length."""
    if requested is None:
        return encoder.text_length, "checkpoint"
    most = encoder.max_text_positions
    if requested < 1 or (most is not None and requested > most):
        raise EvalInputError(f"--text-length {requested}: the text tower takes 1..{most} tokens")
    return requested, "--text-length"


def evaluate_longtext(checkpoint: str, pairs: str, images: str, text_length: int | None = None,
                      split: str | None = None, limit: int | None = None, batch_size: int = 32) -> dict:
    """R@1/5/10 image -> text and text -> image over the pairs, captions at the chosen text length."""
    data = read_pairs(pairs, images, split, limit)
    check_present(data.uris, "--images")
    encoder = Encoder.load(checkpoint)
    length, source = pick_text_length(encoder, text_length)
    image_emb = encoder.images(load_images(data.uris), batch_size)
    text_emb = encoder.texts(data.texts, length, batch_size)
    recall = grouped_recall_at_k(image_emb @ text_emb.t(), torch.tensor(data.text_image))
    return {
        "task": "longtext", "checkpoint": str(checkpoint), "pairs": pairs, "images": images, "split": split,
        "n_images": len(data.uris), "n_texts": len(data.texts), **recall, "chance_r1": 1.0 / len(data.uris),
        "resolution": encoder.resolution, "text_length": length, "text_length_from": source,
        "trained_text_length": encoder.text_length, "captions": encoder.truncation(data.texts, length),
    }
