"""Pixel-level helpers for the prepare stage: safe decode, RGB normalisation, hashes, quality.

Kept free of pipeline concerns so dedup, filters and the trainer can reuse them.

`decode_rgb` is the one decoder for untrusted bytes (prepare, and the stages that re-read the
original bytes prepare accepted). Caption and detect open `model_image` with plain
`Image.open`: prepare wrote those bytes itself (JPEG or PNG, sides <= prepare.model_max_side),
so they are trusted.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

# The web's image formats: what prepare opens unless prepare.allowed_formats says otherwise.
DEFAULT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO")
# Never opened, whatever the config says: Pillow renders EPS by running Ghostscript on the file.
NEVER_FORMATS = frozenset({"EPS"})
# Formats Pillow opens through another format's opener (JPEG's factory returns MPO files).
_OPENED_BY = {"MPO": "JPEG"}

# Pixel bounds. Pillow's own decompression-bomb guard reads the module global
# Image.MAX_IMAGE_PIXELS, so setting it per call would race between threads (and switching it
# off, as FineCap once did, disarmed it for the whole process). It stays at Pillow's default
# here; `decode_rgb` checks the header size against prepare.max_pixels itself right after
# Image.open (which parses only headers) and before any pixel is decoded, and turns Pillow's
# DecompressionBombError (raised from 2 * MAX_IMAGE_PIXELS) into the same reject. PrepareConfig
# caps max_pixels at PILLOW_PIXEL_CEILING so the two bounds never disagree: the stricter one,
# prepare.max_pixels, is the one in force.
PILLOW_PIXEL_CEILING = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)


class ImageRejected(Exception):
    """The image cannot be used; `reason` is the short machine-readable reject reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_formats(names: Iterable[str]) -> tuple[str, ...]:
    """Pillow format names, upper-cased; ValueError naming one that Pillow cannot open or that is
    never allowed (for config validation)."""
    Image.init()
    out = tuple(str(name).strip().upper() for name in names)
    for name in out:
        if name in NEVER_FORMATS:
            raise ValueError(f"{name} is never allowed (Pillow runs Ghostscript to decode it)")
        if name not in Image.OPEN and name not in _OPENED_BY:
            known = sorted({*Image.OPEN, *_OPENED_BY} - NEVER_FORMATS)
            raise ValueError(f"unknown image format {name!r} (Pillow opens: {', '.join(known)})")
    if not out:
        raise ValueError("at least one format is needed")
    return out


def sniff_format(data: bytes) -> str | None:
    """EPS or a default format, if `data` starts with its magic bytes, else None. Only Pillow's
    prefix tests run (no plugin parses the bytes); formats with weak magic (TGA, CUR, ...) are
    left out, as they match other files' first bytes."""
    Image.init()
    prefix = data[:16]
    for name in (*NEVER_FORMATS, *(_OPENED_BY.get(f, f) for f in DEFAULT_FORMATS)):
        accept = Image.OPEN.get(name, (None, None))[1]
        try:
            result = accept(prefix) if accept is not None and prefix else False
        except Exception:  # a prefix test that reads past short data
            result = False
        if result and not isinstance(result, str):
            return name
    return None


def decode_rgb(data: bytes, max_pixels: int, formats: Sequence[str] = DEFAULT_FORMATS) -> Image.Image:
    """Decode to an RGB image with EXIF orientation applied, refusing oversized images up front.

    Only `formats` are tried (never EPS); EPS or a default format that is not in `formats` is
    rejected as `format_not_allowed`, other unreadable bytes as `decode_error`, images over `max_pixels` as
    `too_many_pixels` (from the header, before decoding). Animated images give their first
    frame; alpha is composited on white; 16-bit and float images are scaled to 8 bits.
    """
    allowed = tuple(f.upper() for f in formats if f.upper() not in NEVER_FORMATS)
    openers = tuple(dict.fromkeys(_OPENED_BY.get(f, f) for f in allowed))
    try:
        image = Image.open(io.BytesIO(data), formats=openers)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", f"{exc} (prepare.max_pixels={max_pixels})") from None
    except Exception as exc:  # PIL raises many types for unrecognised data
        other = sniff_format(data)
        if other is not None and other not in allowed:
            raise ImageRejected("format_not_allowed", f"{other} is not in prepare.allowed_formats") from None
        raise ImageRejected("decode_error", f"not a recognised image: {exc}") from None
    if image.format not in allowed:  # e.g. an MPO file, when only JPEG is allowed
        raise ImageRejected("format_not_allowed", f"{image.format} is not in prepare.allowed_formats")
    if image.width * image.height > max_pixels:
        raise ImageRejected(
            "too_many_pixels", f"{image.width}x{image.height} is over prepare.max_pixels={max_pixels}"
        )
    if image.width < 1 or image.height < 1:
        raise ImageRejected("decode_error", "image has no pixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return _to_rgb(image)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:  # a frame or tile larger than the header said
        raise ImageRejected("too_many_pixels", f"{exc} (prepare.max_pixels={max_pixels})") from None
    except Exception as exc:
        raise ImageRejected("decode_error", f"{type(exc).__name__}: {exc}") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        high = array.max() if array.size else 0
        scaled = (array / high * 255.0) if high > 255 else np.clip(array, 0, 255)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def pixel_sha256(image: Image.Image) -> str:
    """Hash of the decoded pixels and size: identical for lossless re-encodes of the same image."""
    digest = hashlib.sha256(f"{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def perceptual_hash(image: Image.Image) -> str:
    """64-bit DCT perceptual hash (16 hex digits): near-duplicates differ in few bits."""
    from scipy.fft import dctn

    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = dctn(grey, norm="ortho")[:8, :8].flatten()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


@dataclass(frozen=True)
class Quality:
    blur: float  # variance of the Laplacian of the grey image at <= 512 px: low means blurry
    brightness: float  # mean luma in [0, 1]
    clipped: float  # fraction of pixels with luma <= 1 or >= 254
    saturation: float  # mean HSV saturation in [0, 1]

    def as_dict(self) -> dict:
        return {k: float(v) for k, v in self.__dict__.items()}


def quality_scores(image: Image.Image) -> Quality:
    small = image.copy()
    small.thumbnail((512, 512), Image.Resampling.BILINEAR)
    luma = np.asarray(small.convert("L"), dtype=np.float32)
    if luma.shape[0] >= 3 and luma.shape[1] >= 3:
        lap = (
            luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4.0 * luma[1:-1, 1:-1]
        )
        blur = float(lap.var())
    else:
        blur = 0.0
    saturation = np.asarray(small.convert("HSV"), dtype=np.float32)[..., 1]
    return Quality(
        blur=blur,
        brightness=float(luma.mean() / 255.0),
        clipped=float(((luma <= 1) | (luma >= 254)).mean()),
        saturation=float(saturation.mean() / 255.0),
    )


def model_copy(image: Image.Image, max_side: int, fmt: str) -> bytes:
    """The bounded copy model stages decode: longest side <= max_side, encoded once."""
    copy = image
    if max(image.size) > max_side:
        copy = image.copy()
        copy.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    if fmt == "jpeg":
        copy.save(out, format="JPEG", quality=90)
    else:
        copy.save(out, format="PNG", compress_level=1)
    return out.getvalue()
