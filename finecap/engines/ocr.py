"""PP-OCRv4 through rapidocr-onnxruntime, built once inside the worker that owns it.

The wheel ships the detection, direction and recognition ONNX models, so this is a real OCR
model offline. Two rapidocr pitfalls are handled here: every setting goes to the constructor
(a keyword passed to a call silently resets `box_thresh`, `unclip_ratio` and `text_score` for
all later calls), and images go in as PIL RGB (a 3-channel numpy array is read as BGR).
onnxruntime's telemetry is switched off before its import: otherwise importing it writes a
device id and a database under ~/.cache/Microsoft, and runs must leave the user's home alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import unicodedata
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from PIL import Image

MODEL_NAME = "PP-OCRv4"


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
        result, _elapsed = self._ocr(image.convert("RGB"))  # no keywords: see the module doc
        lines = []
        for quad, text, score in result or []:
            text = unicodedata.normalize("NFKC", str(text)).strip()
            if text:
                points = tuple((float(x), float(y)) for x, y in quad)
                lines.append(TextLine(points, text, float(score)))
        return lines


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
