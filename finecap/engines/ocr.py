"""PP-OCRv4 through rapidocr-onnxruntime, built once inside the worker that owns it.

The wheel ships the detection, direction and recognition ONNX models, so this is a real OCR
model offline. Two rapidocr pitfalls are handled here: every setting goes to the constructor
(a keyword passed to a call silently resets `box_thresh`, `unclip_ratio` and `text_score` for
all later calls), and images go in as PIL RGB (a 3-channel numpy array is read as BGR).
onnxruntime's telemetry is switched off before its import: otherwise importing it writes a
device id and a database under ~/.cache/Microsoft, and runs must leave the user's home alone.

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
import os
import unicodedata
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

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


class RapidOcrEngine:
    """Reads text lines: `read(image) -> [TextLine]`, one image per call (rapidocr batches the
    lines of an image internally)."""

    def __init__(
        self,
        min_score: float = 0.5,
        box_threshold: float = 0.5,
        limit_side_len: int = 736,
        limit_type: str = "min",
        max_side: int = 2000,
        threads: int = 1,
    ):
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # read when onnxruntime is imported
        from rapidocr_onnxruntime import RapidOCR

        self._ocr = RapidOCR(
            text_score=min_score,
            max_side_len=max_side,
            det_box_thresh=box_threshold,
            det_limit_side_len=limit_side_len,
            det_limit_type=limit_type,
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
        )
        self.model = MODEL_NAME
        self.revision = ocr_revision()

    def read(self, image: Image.Image) -> list[TextLine]:
        width, height = image.size
        result, _elapsed = self._ocr(pad_to_aspect(image.convert("RGB")))  # no keywords: see the module doc
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
