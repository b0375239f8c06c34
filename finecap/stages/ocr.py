"""ocr: PP-OCRv4 text lines as `ocr` regions, and OCR text for regions captioned only "text".

OCR reads the original image (bounded by `ocr.max_side`), not the small model copy: scene text
is often a few dozen pixels high. Each line becomes a region with its box (normalised), text
(`ocr_text`, NFKC), recognition score and `category` (`ocr.category`). Document-like images
(`ocr.document_mode`) keep up to `document_max_regions` lines, and the working column
`ocr_document` tells the regions stage to caption their lines with the text instead of the VLM.
They are not re-read at a higher resolution: measured on a rendered page, upscaling its short
side from 900 to 1280 px doubled the time and dropped the spaces in 4 of 16 lines.

As in the paper, a detector region whose caption says only "text" takes the OCR text inside
it (`fill_text_captions`, defined here with the other OCR-text rules); the regions stage applies
it to the captions it writes, so this stage reads only its own config section.

The text detector runs image by image; the lines of all the images of a batch are then oriented
and recognised together (`ocr.rec_batch_size` per forward), which gives the same lines as one
image at a time. An image the engine raises on becomes an `ocr_error` reject (size and exception
in the detail); the other rows of the batch go on.
"""

from __future__ import annotations

import re
from dataclasses import asdict

import pyarrow as pa
from PIL import Image

from finecap.config import OcrConfig, PipelineConfig, Resources
from finecap.engines.ocr import MODEL_NAME, FoundLines, RapidOcrEngine, TextLine, ocr_revision
from finecap.stages.base import RejectMarks, Stage, set_column
from finecap.stages.detect import drop_regions, existing_regions, region, regions_type
from finecap.stages.images import decode_rows

_ARTICLES = {"a", "an", "the", "some"}


class OcrStage(Stage):
    name = "ocr"
    holds_model = True

    def __init__(self, config: PipelineConfig, engine: RapidOcrEngine | None = None):
        super().__init__(config)
        # An engine may be handed in (tests share one); otherwise this worker builds its own.
        self.engine = engine or make_ocr_engine(config.ocr)

    @classmethod
    def enabled(cls, config: PipelineConfig) -> bool:
        return config.ocr.enabled

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        return config.ocr.resources

    @classmethod
    def inputs(cls, config: PipelineConfig) -> tuple[str, ...]:
        return ("prepare",)  # the original bytes, of rows prepare kept

    @classmethod
    def semantic(cls, config: PipelineConfig) -> dict:
        cfg = asdict(config.ocr)
        for key in ("enabled", "threads", "device", "rec_batch_size", "resources"):
            cfg.pop(key)
        return {**cfg, "model": MODEL_NAME, "revision": ocr_revision()}

    @classmethod
    def provenance(cls, config: PipelineConfig) -> list[dict]:
        return [{"stage": cls.name, "name": "ocr", "model": f"{MODEL_NAME} (rapidocr-onnxruntime)",
                 "revision": ocr_revision()}]

    @classmethod
    def clear(cls, batch: pa.Table) -> pa.Table:
        batch = drop_regions(batch, "ocr")
        return set_column(batch, "ocr_document", pa.nulls(batch.num_rows, pa.bool_()))

    def process(self, batch: pa.Table) -> pa.Table:
        cfg = self.config.ocr
        regions = existing_regions(batch)
        documents = [False] * batch.num_rows
        marks = RejectMarks(self.name, batch.num_rows)
        found: dict[int, FoundLines] = {}
        # Images are decoded and detected one at a time (a batch of large originals never sits in
        # memory at once); only their line crops wait for the batch's one recognition pass.
        for row in range(batch.num_rows):
            decoded, images = decode_rows(batch, "image_bytes", [row], self.config.limits.max_pixels, marks)
            if not decoded:
                continue
            image = images[0]
            image.thumbnail((cfg.max_side, cfg.max_side), Image.Resampling.BICUBIC)
            try:
                found[row] = self.engine.find_lines(image)
            except Exception as exc:  # onnxruntime and cv2 raise many types; the row, not the run, fails
                marks.reject(row, "ocr_error", _error(image.size, exc))
        for row, lines in self._recognise(found, marks).items():
            size = found[row].size
            documents[row] = cfg.document_mode == "always" or (
                cfg.document_mode == "auto" and looks_like_document(lines, size, cfg)
            )
            limit = cfg.document_max_regions if documents[row] else cfg.max_regions
            regions[row] += line_regions(lines, size, limit, cfg.category)
        batch = set_column(batch, "regions", pa.array(regions, regions_type()))
        return marks.apply(set_column(batch, "ocr_document", pa.array(documents, pa.bool_())))

    def _recognise(self, found: dict[int, FoundLines], marks: RejectMarks) -> dict[int, list[TextLine]]:
        """Lines per row, the lines of all the rows recognised together; when that raises, row by
        row, so only the rows that still raise become `ocr_error` rejects."""
        rows = list(found)
        try:
            return dict(zip(rows, self.engine.recognise([found[r] for r in rows]), strict=True))
        except Exception:  # which row raised is found below, one row at a time
            out = {}
        for row in rows:
            try:
                out[row] = self.engine.recognise([found[row]])[0]
            except Exception as exc:
                marks.reject(row, "ocr_error", _error(found[row].size, exc))
        return out


def make_ocr_engine(cfg: OcrConfig) -> RapidOcrEngine:
    return RapidOcrEngine(cfg.min_score, cfg.box_threshold, cfg.limit_side_len, cfg.max_side, cfg.threads,
                          cfg.device, cfg.rec_batch_size, cfg.probe_side)


def _error(size: tuple[int, int], exc: Exception) -> str:
    return f"{size[0]}x{size[1]}: {type(exc).__name__}: {exc}"


def looks_like_document(lines: list[TextLine], size: tuple[int, int], cfg: OcrConfig) -> bool:
    """Many lines, or text covering a large share of the image."""
    if len(lines) >= cfg.document_min_lines:
        return True
    area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in (line.box() for line in lines))
    return area / max(size[0] * size[1], 1) >= cfg.document_min_text_area


def line_regions(lines: list[TextLine], size: tuple[int, int], limit: int, category: str) -> list[dict]:
    """The `limit` best-scored lines as `ocr` regions, kept in reading order."""
    best = sorted(range(len(lines)), key=lambda i: (-lines[i].score, i))[:limit]
    width, height = size
    out = []
    for i in sorted(best):
        x1, y1, x2, y2 = lines[i].box()
        box = [min(max(v, 0.0), 1.0) for v in (x1 / width, y1 / height, x2 / width, y2 / height)]
        out.append(region(box, "ocr", lines[i].score, category=category, ocr_text=lines[i].text))
    return out


def is_text_caption(caption: str | None, text_captions: set[str]) -> bool:
    """Whether a caption says only "text" (lower-cased, punctuation and articles dropped)."""
    if not caption:
        return False
    words = re.sub(r"[^\w\s]", " ", caption.lower()).split()
    while words and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words) in text_captions


def text_inside(box, ocr_regions: list[dict], min_cover: float = 0.5) -> str | None:
    """OCR text of the lines at least `min_cover` inside `box`, in reading order, or None."""
    inside = []
    for r in ocr_regions:
        b = r["bbox"]
        area = (b[2] - b[0]) * (b[3] - b[1])
        iw = min(box[2], b[2]) - max(box[0], b[0])
        ih = min(box[3], b[3]) - max(box[1], b[1])
        if area > 0 and iw > 0 and ih > 0 and iw * ih / area >= min_cover and r.get("ocr_text"):
            inside.append(r)
    return " ".join(r["ocr_text"] for r in reading_order(inside)) or None


def reading_order(regions: list[dict]) -> list[dict]:
    """Top to bottom by line (centres within half a line height), left to right in a line."""
    lines: list[list[dict]] = []
    for r in sorted(regions, key=lambda r: (r["bbox"][1] + r["bbox"][3]) / 2):
        centre, height = (r["bbox"][1] + r["bbox"][3]) / 2, r["bbox"][3] - r["bbox"][1]
        last = lines[-1][-1]["bbox"] if lines else None
        if last and abs(centre - (last[1] + last[3]) / 2) <= min(height, last[3] - last[1]) / 2:
            lines[-1].append(r)
        else:
            lines.append([r])
    return [r for line in lines for r in sorted(line, key=lambda r: r["bbox"][0])]


def fill_text_captions(regions: list[dict], text_captions: set[str], ocr_model: str) -> int:
    """Detector regions captioned only "text" take the OCR text inside them; returns how many."""
    ocr = [r for r in regions if r["origin"] == "ocr"]
    replaced = 0
    for r in regions:
        if r["origin"] != "detector" or not is_text_caption(r.get("caption"), text_captions):
            continue
        text = text_inside(r["bbox"], ocr)
        if text:
            r.update(caption=text, ocr_text=text, caption_model=ocr_model)
            replaced += 1
    return replaced
