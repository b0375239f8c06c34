"""Real photographs that scikit-image ships inside its wheel (no download).

They keep the sample source honest: procedural scenes alone would never show a pipeline
what natural images look like. Captions here are short human descriptions for eyeballing
outputs, not exhaustive ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class PhotoInfo:
    name: str  # the `skimage.data` function that returns it
    caption: str
    credit: str


PHOTOS: dict[str, PhotoInfo] = {
    p.name: p
    for p in (
        PhotoInfo(
            "astronaut",
            "A smiling astronaut in an orange spacesuit holding a helmet, with an American flag "
            "and a space shuttle model behind her.",
            "Eileen Collins, NASA; public domain",
        ),
        PhotoInfo(
            "chelsea",
            "A close-up of a tabby cat with green eyes looking to the side.",
            "Stefan van der Walt; CC0",
        ),
        PhotoInfo(
            "coffee",
            "A cup of espresso on a red saucer with a spoon, on a wooden table.",
            "Rachel Michetti, courtesy of Pikolo Espresso Bar; CC0",
        ),
        PhotoInfo(
            "rocket",
            "A Falcon 9 rocket on its launch pad at dusk between lightning towers, lit by floodlights.",
            "SpaceX (DSCOVR launch); public domain",
        ),
        PhotoInfo(
            "stereo_motorcycle",
            "A red motorcycle parked in a garage in front of shelves with boxes and a wooden bench.",
            "Middlebury 2014 stereo benchmark (Scharstein et al.), left view",
        ),
    )
}


def load_photo(name: str) -> Image.Image:
    """The photo as an RGB PIL image (for the stereo pair, its left view)."""
    if name not in PHOTOS:
        raise KeyError(f"unknown photo {name!r}; known: {', '.join(PHOTOS)}")
    import skimage.data  # deferred: importing scikit-image costs about a second

    pixels = getattr(skimage.data, name)()
    if isinstance(pixels, tuple):
        pixels = pixels[0]
    return Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")


def load_photos() -> list[tuple[str, Image.Image]]:
    """Every bundled photo as (name, image), in a fixed order."""
    return [(name, load_photo(name)) for name in PHOTOS]
