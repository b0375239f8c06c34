"""Anti-aliased masks of the vocabulary's shapes.

Shapes are drawn at 4x and reduced, so edges are smooth but the interior keeps the exact
palette colour (the tests and benchmarks check colours by exact value).
"""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

SUPERSAMPLE = 4


def shape_mask(shape: str, side: int) -> Image.Image:
    """An L-mode mask `side` x `side` pixels: 255 inside the shape, 0 outside."""
    big = side * SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    pad = SUPERSAMPLE  # keep one output pixel of margin so the reduction never clips an edge
    box = (pad, pad, big - 1 - pad, big - 1 - pad)
    centre = (big - 1) / 2
    radius = (big - 1) / 2 - pad
    if shape == "circle":
        draw.ellipse(box, fill=255)
    elif shape == "square":
        inset = round(radius * 0.12)  # a square's bbox would otherwise fill its whole cell
        draw.rectangle((box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset), fill=255)
    elif shape == "ring":
        draw.ellipse(box, fill=255)
        hole = radius * 0.55
        draw.ellipse((centre - hole, centre - hole, centre + hole, centre + hole), fill=0)
    elif shape == "cross":
        arm = radius * 0.34
        draw.rectangle((box[0], centre - arm, box[2], centre + arm), fill=255)
        draw.rectangle((centre - arm, box[1], centre + arm, box[3]), fill=255)
    elif shape in _POLYGONS:
        draw.polygon(_POLYGONS[shape](centre, radius), fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return mask.reduce(SUPERSAMPLE)


def _regular(n: int, start_deg: float, centre: float, radius: float) -> list[tuple[float, float]]:
    return [
        (
            centre + radius * math.cos(math.radians(start_deg + i * 360 / n)),
            centre + radius * math.sin(math.radians(start_deg + i * 360 / n)),
        )
        for i in range(n)
    ]


def _triangle(centre: float, radius: float) -> list[tuple[float, float]]:
    """Upright, filling the cell's width and height (not inscribed in the circle)."""
    top, bottom = centre - radius, centre + radius
    return [(centre, top), (centre + radius, bottom), (centre - radius, bottom)]


def _star(centre: float, radius: float) -> list[tuple[float, float]]:
    outer = _regular(5, -90, centre, radius)
    inner = _regular(5, -90 + 36, centre, radius * 0.45)
    return [p for pair in zip(outer, inner, strict=True) for p in pair]


def _diamond(centre: float, radius: float) -> list[tuple[float, float]]:
    return _regular(4, -90, centre, radius)


def _hexagon(centre: float, radius: float) -> list[tuple[float, float]]:
    return _regular(6, 0, centre, radius)


_POLYGONS = {"triangle": _triangle, "star": _star, "diamond": _diamond, "hexagon": _hexagon}
