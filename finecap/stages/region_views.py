"""The pictures a VLM gets for one region (`regions.view`), built from the original image.

composite: the whole image with the region outlined in red beside an enlarged crop of it (one
picture, cut from the original so small regions keep their detail); marked: the outlined whole
image alone; crop: the crop alone; whole: the unmarked image, the region named by its box in the
prompt (FineViT-VL's box -> caption task).
shared: two pictures per request, the unmarked whole image first and the crop after it (the
region named by its box in the prompt, between them: see engines/base.py `interleave`). The whole
image is made once per image and is the same object, so the same bytes, for all its regions, and
every request of one image starts with the same image and words: vLLM's prefix cache then
encodes and prefills that start once per image instead of once per region (benchmarks/
region_prefill.py measures it).
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from finecap.config import RegionsConfig
from finecap.engines.base import RequestImage

OUTLINE = (255, 0, 0)
GAP_COLOUR = (128, 128, 128)


def shared_crop_side(cfg: RegionsConfig) -> int:
    """The shared view's crop is fitted to half of `view_max_side`. Its tokens are the one image
    cost each region still pays in full (the whole image before it is cached), and a VLM's image
    tokens grow with the area: at half the side the crop costs at most a quarter of the whole
    image's tokens (Qwen3-VL at 32 px a token: 49 for a 224 px square, against 196 at 448), and
    no more than the composite's crop panel (fitted to the whole image's height) for images up to
    2:1. The tiny VLM resizes every picture to 112 px, so there the side changes no token count."""
    return max(16, cfg.view_max_side // 2)


def region_views(images: dict[int, Image.Image], jobs: list[tuple[int, list[float]]],
                 cfg: RegionsConfig) -> list[RequestImage]:
    """The view of every (row, box) job, `images[row]` the row's original image. For the views
    that show the whole image unmarked (shared, whole) one thumbnail per row serves all its
    regions (the same object each time: made once, and one prefix for the engine's cache)."""
    if cfg.view not in ("shared", "whole"):
        return [region_view(images[row], box, cfg) for row, box in jobs]
    wholes: dict[int, Image.Image] = {}
    views: list[RequestImage] = []
    for row, box in jobs:
        if row not in wholes:
            wholes[row] = thumbnail(images[row], cfg.view_max_side)
        views.append(region_view(images[row], box, cfg, whole=wholes[row]))
    return views


def region_view(image: Image.Image, box, cfg: RegionsConfig, whole: Image.Image | None = None) -> RequestImage:
    """The picture (or, for the shared view, the pictures) the VLM gets for one region of `image`
    (the original, full size). `whole`: the shared or whole view's thumbnail, when made already."""
    side = cfg.view_max_side
    if cfg.view == "shared":
        crop = crop_region(image, box, cfg.crop_padding)
        crop_side = shared_crop_side(cfg)
        return (whole if whole is not None else thumbnail(image, side), _fit(crop, crop_side, crop_side))
    if cfg.view == "whole":  # the region is named by its box in the prompt
        return whole if whole is not None else thumbnail(image, side)
    if cfg.view in ("composite", "marked"):
        whole = thumbnail(image, side)
        w, h = whole.size
        width = max(2, round(max(w, h) / 150))
        rect = [box[0] * w, box[1] * h, max(box[2] * w, box[0] * w + 1), max(box[3] * h, box[1] * h + 1)]
        ImageDraw.Draw(whole).rectangle(rect, outline=OUTLINE, width=width)
        if cfg.view == "marked":
            return whole
    crop = crop_region(image, box, cfg.crop_padding)
    if cfg.view == "crop":
        return _fit(crop, side, side)
    crop = _fit(crop, side, whole.height)
    gap = max(4, side // 64)
    canvas = Image.new("RGB", (whole.width + gap + crop.width, whole.height), GAP_COLOUR)
    canvas.paste(whole, (0, 0))
    canvas.paste(crop, (whole.width + gap, (whole.height - crop.height) // 2))
    return canvas


def thumbnail(image: Image.Image, side: int) -> Image.Image:
    """A copy of `image` fitted (down only) in side x side."""
    whole = image.copy()
    whole.thumbnail((side, side), Image.Resampling.BICUBIC)
    return whole


def crop_region(image: Image.Image, box, padding: float) -> Image.Image:
    """The box plus `padding` of its size on every side, at least 2 px each way."""
    w, h = image.size
    pad_x = max((box[2] - box[0]) * w * padding, 2)
    pad_y = max((box[3] - box[1]) * h * padding, 2)
    x1, y1 = max(0, int(box[0] * w - pad_x)), max(0, int(box[1] * h - pad_y))
    x2, y2 = min(w, int(round(box[2] * w + pad_x))), min(h, int(round(box[3] * h + pad_y)))
    return image.crop((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)))


def _fit(image: Image.Image, max_w: int, max_h: int) -> Image.Image:
    """Scale (up or down) to fit max_w x max_h, keeping the aspect ratio."""
    scale = min(max_w / image.width, max_h / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)
