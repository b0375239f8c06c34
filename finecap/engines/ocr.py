"""PP-OCRv4 (the models rapidocr-onnxruntime ships), built once inside the worker that owns it.

The wheel ships the detection, direction and recognition ONNX models, so this is a real OCR
model offline. The engine runs them step by step (engines/ocr_models.py) instead of through
`RapidOCR.__call__`, with rapidocr's own geometry, settings and decoders, so results are rapidocr's:
the detector once per image (an image without text boxes stops there), then the lines of all the
images of a batch oriented and recognised together, where rapidocr batches one image's lines.
Images go in as PIL and are turned to BGR as rapidocr turns them. onnxruntime's telemetry is
switched off before its import: otherwise importing it writes a device id and a database under
~/.cache/Microsoft, and runs must leave the user's home alone.

Images more elongated than 8:1 are padded (black, right or bottom) to 4:1 before they reach
rapidocr. Its detector scales the short side up to `limit_side_len` (736), so its input grows
with the aspect ratio; measured here: a 1x500 image became a 736x345184 float array (MemoryError
after 13 s under a 6 GiB limit; without one the kernel killed the process), 500x1 failed inside
onnxruntime after 18 s, and 2000x1 asked for 3 GB in cv2 (60,000 px wide after rapidocr's
min-side step). rapidocr letterboxes wide images over 8:1 to 4:1 itself, but only after that
step, and tall ones never; padded first, the same geometry holds both ways and the detector
input stays near 4 x 736^2 pixels whatever the image.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

MODEL_NAME = "PP-OCRv4"
# rapidocr letterboxes images wider than its `width_height_ratio` (8) to twice that height (4:1).
PAD_OVER = 8
PAD_TO = 4


@dataclass(frozen=True)
class TextLine:
    """One detected text line: corner points in the image's pixels, text (NFKC) and score."""

    quad: tuple[tuple[float, float], ...]
    text: str
    score: float

    def box(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.quad]
        ys = [p[1] for p in self.quad]
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class FoundLines:
    """One image's text boxes, found and cut out, waiting for recognition (`RapidOcrEngine.recognise`).

    Holds only the line crops, so a batch of large images never sits in memory at once."""

    size: tuple[int, int]  # the image's width and height
    quads: np.ndarray  # (n, 4, 2) float32 corner points in the image's pixels
    crops: tuple[np.ndarray, ...]  # BGR line images, one per quad


class RapidOcrEngine:
    """Reads text lines: `read_batch(images) -> [[TextLine]]`, or per image `read(image)`.

    In two steps for callers that hold one image at a time: `find_lines(image)` runs the detector
    once (an image without text boxes ends there), `recognise(found)` orients and recognises the
    lines of all the images together, `rec_batch_size` lines per forward.
    """

    def __init__(
        self,
        min_score: float = 0.5,
        box_threshold: float = 0.5,
        limit_side_len: int = 736,
        max_side: int = 2000,
        threads: int = 1,
        device: str = "cpu",
        rec_batch_size: int = 32,
        probe_side: int | None = None,
    ):
        from finecap.engines.ocr_models import PpOcrModels

        self.models = PpOcrModels(box_threshold, limit_side_len, threads, device)
        from rapidocr_onnxruntime import RapidOCR  # after the models: they switch telemetry off first

        self._reading_order = RapidOCR.sorted_boxes  # top to bottom, left to right within 10 px
        self.min_score, self.max_side = min_score, max_side
        self.rec_batch_size, self.probe_side = rec_batch_size, probe_side
        self.model = MODEL_NAME
        self.revision = ocr_revision()

    def read(self, image: Image.Image) -> list[TextLine]:
        return self.read_batch([image])[0]

    def read_batch(self, images: Sequence[Image.Image]) -> list[list[TextLine]]:
        return self.recognise([self.find_lines(image) for image in images])

    def find_lines(self, image: Image.Image) -> FoundLines:
        """Detect and cut out the image's text lines (rapidocr's steps up to recognition)."""
        import cv2

        size = image.size
        pixels = cv2.cvtColor(np.array(pad_to_aspect(image.convert("RGB"))), cv2.COLOR_RGB2BGR)
        raw_h, raw_w = pixels.shape[:2]
        pixels, ratio_h, ratio_w = self._bound_sides(pixels)
        pixels, top = self._letterbox(pixels)
        if self.probe_side and not self.models.any_text(pixels, self.probe_side):
            return FoundLines(size, np.zeros((0, 4, 2), np.float32), ())
        boxes = self.models.detect(pixels)
        if not len(boxes):
            return FoundLines(size, boxes, ())
        boxes = self._reading_order(boxes)
        crops = tuple(_crop_line(pixels, box) for box in boxes)
        return FoundLines(size, _undo_steps(boxes, top, ratio_w, ratio_h, (raw_w, raw_h)), crops)

    def recognise(self, found: Sequence[FoundLines]) -> list[list[TextLine]]:
        """Text lines per image: every crop of every image oriented and recognised together; lines
        scored under `min_score` or empty after NFKC are dropped, points clipped to the image."""
        crops = [crop for f in found for crop in f.crops]
        widths = [w for f in found for w in self.models.rec_widths(f.crops)]
        read = self.models.recognise(self.models.orient(crops, self.rec_batch_size), widths, self.rec_batch_size)
        out, start = [], 0
        for f in found:
            lines = []
            for quad, (text, score) in zip(f.quads, read[start : start + len(f.crops)], strict=True):
                text = unicodedata.normalize("NFKC", str(text)).strip()
                if score >= self.min_score and text:
                    width, height = f.size
                    points = tuple((min(max(float(x), 0.0), width), min(max(float(y), 0.0), height)) for x, y in quad)
                    lines.append(TextLine(points, text, float(score)))
            out.append(lines)
            start += len(f.crops)
        return out

    def _bound_sides(self, pixels: np.ndarray) -> tuple[np.ndarray, float, float]:
        """rapidocr's first step: the long side down to `max_side`, a short side under its
        min_side_len up to it; returns the image and the ratios back to the input's pixels."""
        from rapidocr_onnxruntime.utils import increase_min_side, reduce_max_side

        ratio_h = ratio_w = 1.0
        if max(pixels.shape[:2]) > self.max_side:
            pixels, ratio_h, ratio_w = reduce_max_side(pixels, self.max_side)
        if min(pixels.shape[:2]) < self.models.settings["min_side_len"]:
            pixels, ratio_h, ratio_w = increase_min_side(pixels, self.models.settings["min_side_len"])
        return pixels, ratio_h, ratio_w

    def _letterbox(self, pixels: np.ndarray) -> tuple[np.ndarray, int]:
        """rapidocr's black bands above and below a low (<= min_height) or wide (over
        width_height_ratio) image; returns the image and the band's height."""
        import cv2

        height, width = pixels.shape[:2]
        min_height, ratio = self.models.settings["min_height"], self.models.settings["width_height_ratio"]
        if height > min_height and (ratio == -1 or width / height <= ratio):
            return pixels, 0
        band = int(abs(max(int(width / ratio), min_height) * 2 - height) / 2)
        return cv2.copyMakeBorder(pixels, band, band, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0)), band


def _undo_steps(boxes: list[np.ndarray], top: int, ratio_w: float, ratio_h: float,
                size: tuple[int, int]) -> np.ndarray:
    """Detector boxes back in the input image's pixels (float32, as rapidocr computes them): the
    letterbox band taken off, the side bounding undone, clipped to the input."""
    quads = np.array(boxes, dtype=np.float32)
    quads[:, :, 1] -= top
    quads[:, :, 0] *= ratio_w
    quads[:, :, 1] *= ratio_h
    quads = np.where(quads < 0, 0, quads)
    quads[..., 0] = np.minimum(quads[..., 0], size[0])
    quads[..., 1] = np.minimum(quads[..., 1], size[1])
    return quads


def _crop_line(pixels: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad's pixels warped upright (bicubic, edges replicated); lines 1.5 times taller than
    wide turned a quarter, as rapidocr reads vertical text."""
    import cv2

    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    warp = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    line = cv2.warpPerspective(pixels, warp, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    return np.rot90(line) if line.shape[0] * 1.0 / line.shape[1] >= 1.5 else line


def rapidocr_lines(ocr, image: Image.Image) -> list[TextLine]:
    """rapidocr's own per-image call (`RapidOCR(image)`), its lines kept as the engine keeps them:
    the reference the batched path must equal (tests/engines/test_ocr.py) and the "before" of
    benchmarks/ocr_throughput.py."""
    width, height = image.size
    result, _ = ocr(pad_to_aspect(image.convert("RGB")))
    lines = []
    for quad, text, score in result or []:
        text = unicodedata.normalize("NFKC", str(text)).strip()
        if text:
            points = tuple((min(max(float(x), 0.0), width), min(max(float(y), 0.0), height)) for x, y in quad)
            lines.append(TextLine(points, text, float(score)))
    return lines


def pad_to_aspect(image: Image.Image, over: float = PAD_OVER, to: float = PAD_TO) -> Image.Image:
    """An image more than `over` times longer than wide (or the reverse) on a black canvas
    extended right or down to `to`:1; pixel coordinates of the image are unchanged."""
    width, height = image.size
    if max(width, height) <= over * min(width, height):
        return image
    size = (max(width, math.ceil(height / to)), max(height, math.ceil(width / to)))
    canvas = Image.new("RGB", size, (0, 0, 0))
    canvas.paste(image, (0, 0))
    return canvas


def ocr_revision() -> str:
    """rapidocr's version plus a hash of the ONNX models it ships, e.g. `1.4.4+sha256:...`.

    Finds the package without importing it (importing it imports onnxruntime; see the module doc).
    """
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("rapidocr_onnxruntime is not installed")
    models = sorted((Path(spec.origin).parent / "models").glob("*.onnx"))
    digest = hashlib.sha256()
    for path in models:
        digest.update(f"{path.name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    try:
        version = metadata.version("rapidocr-onnxruntime")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{version}+sha256:{digest.hexdigest()[:16]}"
