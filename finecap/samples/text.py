"""Fonts and word rendering for scenes.

Words are rendered into their own mask, rotated there and cropped to the drawn pixels, so
the ground-truth box is exactly the glyphs' extent wherever the word is pasted.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Legible faces, most used first. DejaVu ships with Debian and with matplotlib (a dependency);
# when neither is found Pillow's built-in scalable font stands in (then only one face).
FACES: tuple[str, ...] = ("DejaVuSans-Bold", "DejaVuSans", "DejaVuSerif-Bold")
SYSTEM_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
PILLOW_DEFAULT = "pillow-default"


def _font_dirs() -> list[Path]:
    dirs = [SYSTEM_FONT_DIR]
    spec = importlib.util.find_spec("matplotlib")  # locates the package without importing it
    if spec and spec.submodule_search_locations:
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf")
    return dirs


@functools.cache
def available_faces() -> tuple[str, ...]:
    """Faces that can be drawn on this machine, in `FACES` order (never empty)."""
    found = tuple(face for face in FACES if _face_path(face) is not None)
    return found or (PILLOW_DEFAULT,)


@functools.cache
def _face_path(face: str) -> Path | None:
    for folder in _font_dirs():
        path = folder / f"{face}.ttf"
        if path.is_file():
            return path
    return None


@functools.cache
def load_font(face: str, size: int) -> ImageFont.FreeTypeFont:
    """The face at `size` pixels (em size); cached because scenes reuse a few sizes."""
    if face == PILLOW_DEFAULT:
        return ImageFont.load_default(size=size)  # type: ignore[return-value]
    path = _face_path(face)
    if path is None:
        raise FileNotFoundError(f"font {face}.ttf not found in {', '.join(map(str, _font_dirs()))}")
    return ImageFont.truetype(str(path), size=size)


def word_mask(text: str, face: str, size: int, angle: float) -> Image.Image:
    """L-mode mask of `text` rotated `angle` degrees counter-clockwise, cropped to its ink."""
    font = load_font(face, size)
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, size // 8)
    mask = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(mask).text((pad - left, pad - top), text, font=font, fill=255)
    if angle:
        mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    ink = mask.getbbox()
    if ink is None:
        raise ValueError(f"{text!r} rendered no pixels with {face} at {size}px")
    return mask.crop(ink)
