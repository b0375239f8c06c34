"""Broken and odd image files, generated here, through prepare and filter: no crash, and each one
is kept (normalised to RGB) or rejected with a stage and a reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from finecap.stages.filters import FilterStage
from finecap.stages.prepare import PrepareStage

SIZE = (480, 360)


def _pattern(size=SIZE, mode="RGB") -> Image.Image:
    """Sharp, mid-exposure blocks: passes every quality rule."""
    grid = np.random.default_rng(sum(size)).integers(40, 215, size=(9, 12, 3), dtype=np.uint8)
    return Image.fromarray(grid).resize(size, Image.Resampling.NEAREST).convert(mode)


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def _png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height: a decompression bomb refused from the header."""
    data = bytearray(_save(Image.new("L", (8, 8)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return _save(_pattern((480, 300)), "JPEG", exif=exif.tobytes())


def _animated(fmt: str) -> bytes:
    frames = [_pattern(), Image.new("RGB", SIZE, (250, 0, 0))]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _palette_with_transparency() -> bytes:
    image = _pattern().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _save(image, "PNG", transparency=0)


def _sixteen_bit() -> bytes:
    values = (np.asarray(_pattern().convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    return _save(Image.fromarray(values), "PNG")


def _float_tiff() -> bytes:
    return _save(Image.fromarray(np.asarray(_pattern().convert("L"), dtype=np.float32)), "TIFF")


def _bad_crc_png() -> bytes:
    data = bytearray(_save(_pattern(), "PNG"))
    data[-20] ^= 0xFF  # inside the last IDAT chunk
    return bytes(data)


def _corrupt_exif_jpeg() -> bytes:
    data = _save(_pattern(), "JPEG")
    app1 = b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\x00" * 20  # IFD offset far past the end
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


# A minimal EPS file: Pillow would parse it and render it with Ghostscript; prepare never opens it.
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 48 36\n%%EndComments\nnewpath 0 0 moveto 48 36 lineto stroke\n"


def _mpo() -> bytes:
    return _save(_pattern(), "MPO", save_all=True, append_images=[_pattern().rotate(90)])


KEEP = "kept"
# name -> (bytes, expected): expected is "kept" or (stage, reason).
CASES = {
    "empty": (b"", ("prepare", "empty")),
    "garbage": (np.random.default_rng(1).bytes(5000), ("prepare", "decode_error")),
    "html": (b"<!doctype html><html><body>404</body></html>", ("prepare", "decode_error")),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', ("prepare", "decode_error")),
    "pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", ("prepare", "decode_error")),
    "jpeg_magic_then_junk": (b"\xff\xd8\xff\xe0" + b"\x13" * 3000, ("prepare", "decode_error")),
    "truncated_jpeg": (_save(_pattern(), "JPEG")[:1500], ("prepare", "decode_error")),
    "truncated_png": (_save(_pattern(), "PNG")[:400], ("prepare", "decode_error")),
    "png_bad_crc": (_bad_crc_png(), ("prepare", "decode_error")),
    "bomb_png_header": (_png_with_size(100_000, 100_000), ("prepare", "too_many_pixels")),
    "bomb_png_wide": (_png_with_size(2_000_000, 40), ("prepare", "too_many_pixels")),
    "cmyk_jpeg": (_save(_pattern(mode="CMYK"), "JPEG"), KEEP),
    "palette_transparency": (_palette_with_transparency(), KEEP),
    "sixteen_bit_grey": (_sixteen_bit(), KEEP),
    "float_tiff": (_float_tiff(), KEEP),
    "grey_png": (_save(_pattern().convert("L"), "PNG"), KEEP),
    "la_png": (_save(_pattern().convert("LA"), "PNG"), KEEP),
    "rgba_png": (_save(_pattern().convert("RGBA"), "PNG"), KEEP),
    "one_bit_png": (_save(_pattern().convert("1"), "PNG"), ("filter", "clipped")),  # all 0 or 255
    "animated_gif": (_animated("GIF"), KEEP),
    "animated_webp": (_animated("WEBP"), KEEP),
    "lossless_webp": (_save(_pattern(), "WEBP", lossless=True), KEEP),
    "progressive_jpeg": (_save(_pattern(), "JPEG", progressive=True), KEEP),
    "bmp": (_save(_pattern(), "BMP"), KEEP),
    "tiff": (_save(_pattern(), "TIFF"), KEEP),
    "mpo": (_mpo(), KEEP),
    "eps": (EPS, ("prepare", "format_not_allowed")),
    "ico": (_save(_pattern((64, 64)), "ICO"), ("prepare", "decode_error")),  # Pillow reads it; not allowed
    "tga": (_save(_pattern(), "TGA"), ("prepare", "decode_error")),
    "exif_rotated_jpeg": (_exif_rotated(), KEEP),
    "corrupt_exif_jpeg": (_corrupt_exif_jpeg(), KEEP),
    "one_pixel": (_save(Image.new("RGB", (1, 1), (90, 90, 90)), "PNG"), ("filter", "too_small")),
    "very_wide": (_save(_pattern((3000, 400)), "PNG"), ("filter", "bad_aspect_ratio")),
    "flat_grey": (_save(Image.new("RGB", SIZE, (128, 128, 128)), "PNG"), ("filter", "blurry")),
    "black": (_save(_pattern().point(lambda v: v // 40), "JPEG"), ("filter", "too_dark")),
    "blown_out": (_save(_pattern().point(lambda v: min(255, v * 4)), "PNG"), ("filter", "too_bright")),
}


@pytest.fixture(scope="module")
def outcomes():
    from finecap.config import load_config
    from tests.conftest import LOCAL_YAML

    # The library's quality thresholds (not the sample pipeline's relaxed ones); a short side of
    # 300 lets the 480x360 test images through the size rule.
    config = load_config(LOCAL_YAML, ["filter.min_short_side=300", "filter.max_brightness=0.85",
                                      "filter.max_saturation=0.85", "limits.max_pixels=50000000"],
                         **{"source.uri": "unused", "output.uri": "unused"})
    names = list(CASES)
    batch = pa.table({"key": names, "shard": ["part-000000"] * len(names),
                      "image_bytes": pa.array([CASES[n][0] for n in names], pa.binary())})
    out = FilterStage(config)(PrepareStage(config)(batch))
    return {row["key"]: row for row in out.to_pylist()}


def test_there_are_at_least_20_kinds():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", list(CASES))
def test_each_file_is_kept_normalised_or_rejected_with_a_reason(outcomes, name):
    row, expected = outcomes[name], CASES[name][1]
    if expected == KEEP:
        assert row["reject_stage"] is None, (row["reject_reason"], row["reject_detail"])
        image = Image.open(io.BytesIO(row["model_image"]))
        assert image.mode == "RGB" and max(image.size) <= 448
        assert row["width"] * row["height"] > 0 and len(row["sha256"]) == 64
    else:
        assert (row["reject_stage"], row["reject_reason"]) == expected, row["reject_detail"]
        assert row["reject_detail"]


def test_exif_orientation_is_applied(outcomes):
    assert (outcomes["exif_rotated_jpeg"]["width"], outcomes["exif_rotated_jpeg"]["height"]) == (300, 480)


def test_animated_images_give_their_first_frame(outcomes):
    still = outcomes["progressive_jpeg"]  # same pattern, one frame
    for name in ("animated_gif", "animated_webp"):
        frame = Image.open(io.BytesIO(outcomes[name]["model_image"])).convert("RGB")
        assert np.asarray(frame)[..., 0].mean() < 200  # not the solid red second frame
        assert (outcomes[name]["width"], outcomes[name]["height"]) == (still["width"], still["height"])
