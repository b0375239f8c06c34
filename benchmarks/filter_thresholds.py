"""How the quality-filter defaults were chosen: rates on ordinary photos and on degraded ones.

The paper drops blurry, badly exposed and oversaturated images, "about 3%" of its web photos.
Offline we have the real photos scikit-image and matplotlib bundle (17 of them, colour and grey,
indoor, outdoor, night, space, microscopy). Each is cut into random views the way web images
vary (crop, downscale, exposure +-0.5 EV, saturation x0.8-1.25, JPEG quality 70-95): the
"ordinary" set. The same views with a synthetic defect (Gaussian blur, under- and over-exposure,
boosted saturation), plus scikit-image's real motion-blurred `clock`, form the "degraded" set.
Thresholds sit in the tails of the ordinary set (together ~3% of it) and must catch the degraded
views. Size rules are off here: they are the paper's values and need no measurement.

    python benchmarks/filter_thresholds.py [--views 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from finecap.config import FilterConfig  # noqa: E402
from finecap.image_ops import quality_scores  # noqa: E402
from finecap.stages.filters import filter_reason  # noqa: E402

SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "camera", "coins", "moon", "page",
    "text", "grass", "gravel", "brick", "retina", "hubble_deep_field", "immunohistochemistry",
)
GREY_PHOTOS = {"camera", "coins", "moon", "page", "text", "grass", "gravel", "brick"}
DEGRADATIONS = ("blur", "dark", "bright", "saturated")


def real_photos() -> list[tuple[str, Image.Image]]:
    """The bundled real photos, RGB, in a fixed order (no download)."""
    import matplotlib.cbook
    import skimage.data

    photos = []
    for name in SKIMAGE_PHOTOS:
        pixels = getattr(skimage.data, name)()
        pixels = pixels[0] if isinstance(pixels, tuple) else pixels
        photos.append((name, Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")))
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(("grace_hopper", Image.open(f).convert("RGB")))
    return photos


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def _scale(image: Image.Image, gain: float, offset: float = 0.0) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32) * gain + offset
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def ordinary_view(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = photo.size
    cw, ch = (int(side * rng.uniform(0.5, 1.0)) for side in (width, height))
    x, y = int(rng.integers(0, width - cw + 1)), int(rng.integers(0, height - ch + 1))
    view = photo.crop((x, y, x + cw, y + ch))
    factor = rng.uniform(0.6, 1.0)
    view = view.resize((max(1, int(cw * factor)), max(1, int(ch * factor))), Image.Resampling.BOX)
    view = _scale(view, 2 ** rng.uniform(-0.5, 0.5))
    view = ImageEnhance.Color(view).enhance(rng.uniform(0.8, 1.25))
    return _jpeg(view, int(rng.integers(70, 96)))


def degrade(view: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    if kind == "blur":
        return view.filter(ImageFilter.GaussianBlur(rng.uniform(2.5, 5.0)))
    if kind == "dark":
        return _scale(view, rng.uniform(0.06, 0.18))
    if kind == "bright":
        return _scale(view, rng.uniform(2.5, 4.0), rng.uniform(0, 40))
    if kind == "saturated":
        return ImageEnhance.Color(view).enhance(rng.uniform(3.0, 6.0))
    raise ValueError(kind)


def corpus(views_per_photo: int = 30, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Quality scores of the ordinary and degraded views: ([{photo, quality}], [{photo, kind, quality}])."""
    rng = np.random.default_rng(seed)
    ordinary, degraded = [], []
    for name, photo in real_photos():
        for i in range(views_per_photo):
            view = ordinary_view(photo, rng)
            ordinary.append({"photo": name, "quality": quality_scores(view).as_dict()})
            if i % 3 == 0:  # a third of the views, once per defect
                for kind in DEGRADATIONS:
                    if kind == "saturated" and name in GREY_PHOTOS:
                        continue  # a grey photo stays grey: no defect to catch
                    bad = degrade(view, kind, rng)
                    degraded.append({"photo": name, "kind": kind, "quality": quality_scores(bad).as_dict()})
    import skimage.data

    clock = Image.fromarray(skimage.data.clock()).convert("RGB")
    degraded.append({"photo": "clock", "kind": "motion_blur", "quality": quality_scores(clock).as_dict()})
    return ordinary, degraded


def rates(ordinary: list[dict], degraded: list[dict], cfg: FilterConfig) -> dict:
    """Share of ordinary views removed (by reason) and share of each defect caught."""
    quality_only = replace(cfg, min_short_side=1, max_aspect_ratio=1e9)
    reasons = Counter()
    for item in ordinary:
        found = filter_reason(1000, 1000, item["quality"], quality_only)
        reasons[found[0] if found else "kept"] += 1
    caught = Counter()
    totals = Counter(d["kind"] for d in degraded)
    for item in degraded:
        caught[item["kind"]] += filter_reason(1000, 1000, item["quality"], quality_only) is not None
    removed = len(ordinary) - reasons["kept"]
    return {
        "ordinary_views": len(ordinary),
        "ordinary_removed": round(removed / len(ordinary), 4),
        "ordinary_removed_by_reason": {k: v for k, v in sorted(reasons.items()) if k != "kept"},
        "degraded_caught": {k: round(caught[k] / totals[k], 3) for k in sorted(totals)},
    }


def percentiles(items: list[dict]) -> dict:
    out = {}
    for score in ("blur", "brightness", "clipped", "saturation"):
        values = np.array([i["quality"][score] for i in items])
        out[score] = {f"p{q}": round(float(np.percentile(values, q)), 4) for q in (0.5, 1, 2, 5, 50, 95, 98, 99, 99.5)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--views", type=int, default=30, help="ordinary views per photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="print only, do not write finecap/benchmark_results/")
    args = parser.parse_args()
    ordinary, degraded = corpus(args.views, args.seed)
    figures = {
        "defaults": {k: v for k, v in FilterConfig().__dict__.items() if k not in ("enabled",)},
        **rates(ordinary, degraded, FilterConfig()),
        "ordinary_percentiles": percentiles(ordinary),
        "degraded_percentiles": {
            kind: percentiles([d for d in degraded if d["kind"] == kind]) for kind in DEGRADATIONS
        },
    }
    import json

    print(json.dumps(figures, indent=2))
    if not args.no_record:
        from benchmarks.record import record

        headline = (
            f"defaults drop {figures['ordinary_removed']:.1%} of {len(ordinary)} ordinary views; catch "
            + ", ".join(f"{k} {v:.0%}" for k, v in figures["degraded_caught"].items())
        )
        record("filter_thresholds", figures, headline, "about 3% of ordinary photos removed, defects caught")


if __name__ == "__main__":
    main()
