import io

import numpy as np
import pytest
from PIL import Image

from finecap.image_ops import (
    ImageRejected,
    decode_rgb,
    model_copy,
    perceptual_hash,
    pixel_sha256,
    quality_scores,
)
from tests.conftest import png_bytes


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kw)
    return out.getvalue()


def _photo(size=(96, 64)) -> Image.Image:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x * 255 / size[0], y * 255 / size[1], (x + y) % 255], -1)
    return Image.fromarray((base + rng.normal(0, 8, base.shape)).clip(0, 255).astype(np.uint8))


@pytest.mark.parametrize(
    "image",
    [
        Image.new("CMYK", (20, 10), (0, 255, 0, 0)),
        Image.new("L", (20, 10), 128),
        Image.new("LA", (20, 10), (128, 0)),
        Image.new("RGBA", (20, 10), (255, 0, 0, 0)),
        Image.new("I;16", (20, 10), 40000),
        Image.new("1", (20, 10), 1),
    ],
    ids=lambda im: im.mode,
)
def test_every_mode_becomes_rgb(image):
    fmt = "TIFF" if image.mode in ("CMYK", "I;16") else "PNG"
    out = decode_rgb(_encode(image, fmt), max_pixels=10_000)
    assert out.mode == "RGB" and out.size == (20, 10)


def test_transparent_pixels_become_white():
    out = decode_rgb(_encode(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), "PNG"), 100)
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = decode_rgb(_encode(image, "JPEG", exif=exif.tobytes()), 10_000)
    assert out.size == (20, 40)


def test_pixel_bound_is_checked_before_decoding():
    big = _encode(Image.new("L", (3000, 3000)), "PNG")
    with pytest.raises(ImageRejected) as err:
        decode_rgb(big, max_pixels=1_000_000)
    assert err.value.reason == "too_many_pixels"


@pytest.mark.parametrize("data", [b"", b"garbage", png_bytes()[:40]])
def test_corrupt_bytes_are_rejected_with_a_reason(data):
    with pytest.raises(ImageRejected) as err:
        decode_rgb(data, 10_000)
    assert err.value.reason == "decode_error"


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert decode_rgb(data, 1000).getpixel((5, 5))[0] > 200


def test_sha256_is_of_pixels_and_phash_tolerates_resizing():
    photo = _photo()
    png = decode_rgb(_encode(photo, "PNG"), 10**6)
    bmp = decode_rgb(_encode(photo, "BMP"), 10**6)
    assert pixel_sha256(png) == pixel_sha256(bmp)
    assert pixel_sha256(png) != pixel_sha256(png.resize((95, 64)))
    near = int(perceptual_hash(png), 16) ^ int(perceptual_hash(png.resize((80, 53))), 16)
    far = int(perceptual_hash(png), 16) ^ int(perceptual_hash(png.transpose(Image.Transpose.ROTATE_180)), 16)
    assert bin(near).count("1") <= 6 < bin(far).count("1")


def test_quality_scores_separate_sharp_from_blurred_and_dark_from_bright():
    from PIL import ImageFilter

    photo = _photo((256, 256))
    assert quality_scores(photo).blur > 10 * quality_scores(photo.filter(ImageFilter.GaussianBlur(4))).blur
    dark = quality_scores(Image.new("RGB", (32, 32), (0, 0, 0)))
    assert dark.brightness == 0 and dark.clipped == 1.0 and dark.saturation == 0
    assert quality_scores(Image.new("RGB", (32, 32), (255, 0, 0))).saturation == 1.0


def test_model_copy_is_bounded():
    data = model_copy(_photo((1000, 500)), max_side=448, fmt="jpeg")
    assert Image.open(io.BytesIO(data)).size == (448, 224)
    assert Image.open(io.BytesIO(model_copy(_photo((100, 50)), 448, "png"))).size == (100, 50)


def test_pillow_keeps_its_own_pixel_guard():
    """Importing FineCap's decoder no longer switches Pillow's bomb guard off for the process."""
    import finecap.image_ops as image_ops
    from finecap.config import LimitsConfig

    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default
    assert image_ops.PILLOW_PIXEL_CEILING == 2 * Image.MAX_IMAGE_PIXELS
    assert LimitsConfig.__dataclass_fields__["max_pixels"].metadata["max"] == image_ops.PILLOW_PIXEL_CEILING


def test_a_header_over_pillows_limit_is_too_many_pixels():
    from tests.stages.test_prepare_hostile import _png_with_size

    with pytest.raises(ImageRejected) as err:  # Pillow itself refuses it, at open
        decode_rgb(_png_with_size(20_000, 10_000), max_pixels=178_956_970)
    assert err.value.reason == "too_many_pixels" and "prepare.max_pixels" in err.value.detail


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\n"


def test_eps_is_never_opened(monkeypatch):
    """Not by Pillow's EPS plugin (which would run Ghostscript), even if a caller lists it."""
    from PIL import EpsImagePlugin

    opened = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(1))
    for formats in (("JPEG", "PNG"), ("EPS", "PNG")):
        with pytest.raises(ImageRejected) as err:
            decode_rgb(EPS, 10_000, formats)
        assert (err.value.reason, err.value.detail) == ("format_not_allowed", "EPS is not in prepare.allowed_formats")
    assert opened == []


def test_only_allowed_formats_are_opened():
    png, gif = _encode(_photo(), "PNG"), _encode(_photo(), "GIF")
    assert decode_rgb(gif, 10**6).size == (96, 64)
    for data, fmt in ((png, "PNG"), (gif, "GIF")):
        with pytest.raises(ImageRejected) as err:
            decode_rgb(data, 10**6, ("JPEG",))
        assert (err.value.reason, err.value.detail) == ("format_not_allowed", f"{fmt} is not in prepare.allowed_formats")
    with pytest.raises(ImageRejected, match="decode_error"):  # a format Pillow reads, but not allowed
        decode_rgb(_encode(_photo(), "PCX"), 10**6)


def test_mpo_is_its_own_format():
    mpo = _encode(_photo(), "MPO", save_all=True, append_images=[_photo().rotate(90)])
    assert decode_rgb(mpo, 10**6).size == (96, 64)
    with pytest.raises(ImageRejected, match="format_not_allowed: MPO"):
        decode_rgb(mpo, 10**6, ("JPEG", "PNG"))
    jpeg = _encode(_photo(), "JPEG")
    assert decode_rgb(jpeg, 10**6, ("JPEG",)).size == (96, 64)
    with pytest.raises(ImageRejected, match="format_not_allowed: JPEG"):
        decode_rgb(jpeg, 10**6, ("MPO",))
