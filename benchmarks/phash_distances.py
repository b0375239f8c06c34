"""Perceptual-hash distances of copies vs distinct images: where `dedup.near_threshold` sits.

Copies: each bundled real photo (scikit-image, 16) and 20 sample scenes, re-encoded as JPEG,
resized, watermarked, re-exposed or cropped. Distinct: every pair among the photos and 300
sample scenes. Prints the largest distance per kind of copy and the smallest between distinct
images; the threshold must sit between the copies it should catch and the distinct pairs.

    python benchmarks/phash_distances.py [--scenes 300]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.filter_thresholds import real_photos  # noqa: E402
from finecap.config import DedupConfig  # noqa: E402
from finecap.image_ops import perceptual_hash  # noqa: E402


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def copies(image: Image.Image) -> dict[str, Image.Image]:
    w, h = image.size
    marked = image.copy()
    ImageDraw.Draw(marked).text((w // 20, h // 20), "WATERMARK", fill=(255, 255, 255))
    return {
        "jpeg_q50": _jpeg(image, 50), "jpeg_q75": _jpeg(image, 75), "jpeg_q95": _jpeg(image, 95),
        "resize_0.5": image.resize((w // 2, h // 2), Image.Resampling.BICUBIC),
        "resize_0.75": image.resize((w * 3 // 4, h * 3 // 4), Image.Resampling.BICUBIC),
        "resize_1.5": image.resize((w * 3 // 2, h * 3 // 2), Image.Resampling.BICUBIC),
        "half_and_jpeg_q70": _jpeg(image.resize((w // 2, h // 2), Image.Resampling.BICUBIC), 70),
        "watermark": marked,
        "brightness_1.3": ImageEnhance.Brightness(image).enhance(1.3),
        "contrast_0.7": ImageEnhance.Contrast(image).enhance(0.7),
        "crop_2.5pct_each_side": image.crop((w // 40, h // 40, w - w // 40, h - h // 40)),
    }


def _hash(image: Image.Image) -> int:
    return int(perceptual_hash(image), 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    from finecap.samples.source import scene_record

    photos = [image for name, image in real_photos() if name != "grace_hopper"]
    scenes = [Image.open(io.BytesIO(scene_record(i, 0)[0])).convert("RGB") for i in range(args.scenes)]
    by_kind: dict[str, list[int]] = {}
    for image in photos + scenes[:20]:
        original = _hash(image)
        for kind, copy in copies(image).items():
            by_kind.setdefault(kind, []).append(bin(original ^ _hash(copy)).count("1"))

    def min_pair(images):
        hashes = np.array([_hash(i) for i in images], dtype=np.uint64)
        d = np.bitwise_count(hashes[:, None] ^ hashes[None, :])[np.triu_indices(len(hashes), 1)]
        return int(d.min()), int((d <= DedupConfig().near_threshold).sum()), len(d)

    photo_min, photo_close, photo_pairs = min_pair(photos)
    scene_min, scene_close, scene_pairs = min_pair(scenes)
    figures = {
        "copies_max_distance": {k: max(v) for k, v in by_kind.items()},
        "copies_mean_distance": {k: round(float(np.mean(v)), 2) for k, v in by_kind.items()},
        "distinct_photos": {"min_distance": photo_min, "pairs_within_threshold": photo_close, "pairs": photo_pairs},
        "distinct_scenes": {"min_distance": scene_min, "pairs_within_threshold": scene_close, "pairs": scene_pairs},
        "near_threshold": DedupConfig().near_threshold,
    }
    print(json.dumps(figures, indent=2))
    if not args.no_record:
        from benchmarks.record import record

        caught = sorted(k for k, v in figures["copies_max_distance"].items() if v <= figures["near_threshold"])
        headline = (f"threshold {figures['near_threshold']}: catches every {', '.join(caught)} copy; distinct photos "
                    f">= {photo_min} bits, scenes >= {scene_min} ({scene_close} of {scene_pairs} pairs within)")
        record("phash_distances", figures, headline, "copies within the threshold, distinct images outside")


if __name__ == "__main__":
    main()
