"""regions: context-aware region captions from a VLM that sees the region and the whole image.

Engines take one image per request (`VisionLanguageEngine`), so the two views are composed
into one picture (`regions.view`): by default the whole image with the region outlined in red
beside an enlarged crop of it (the crop is cut from the original image, so small regions keep
their detail); `whole` sends the image unmarked and names the region by its box in the prompt,
as FineViT-VL's box -> caption task does. With `regions.coordinates` the prompt also carries the
box as 0-1000 integers.
The prompt file (`regions.captioner.prompt`, e.g. region_context/v1) is a template: lines
starting with `[composite]`, `[marked]`, `[crop]`, `[whole]` or `[coordinates]` are kept only for that view
or when coordinates are on; `{subject}` becomes the phrase (or the OCR text) and `{box}` the box.

Every region without a caption gets one in a single engine call per batch (the engine batches
continuously). OCR regions of document-like images, or all OCR regions when
`caption_ocr_regions` is false, are captioned with their text instead. Provenance:
`caption_model` is `MODEL@REVISION` (e.g. `tiny:vlm-a@sha256:0123...`; OCR-text captions name
`PP-OCRv4@1.4.4+sha256:...`); the prompt id and its hash are in every shard manifest. A row whose
image is missing or unreadable is rejected; a failed generation leaves its region uncaptioned.
"""

from __future__ import annotations

import re
from dataclasses import asdict

import pyarrow as pa
from PIL import Image, ImageDraw

from finecap.box_format import box_coordinates
from finecap.config import PipelineConfig, RegionsConfig, Resources
from finecap.engines.base import SamplingSpec, VisionLanguageEngine
from finecap.engines.factory import make_vlm_engine
from finecap.engines.ocr import MODEL_NAME as OCR_MODEL
from finecap.engines.ocr import ocr_revision
from finecap.prompts import load_prompt, region_template
from finecap.stages.base import RejectMarks, Stage, set_column
from finecap.stages.caption_hygiene import clean_caption
from finecap.stages.declare import captioner_provenance, captioner_semantic
from finecap.stages.detect import existing_regions, regions_type
from finecap.stages.images import decode_rows
from finecap.stages.ocr import fill_text_captions

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # never meant as caption text
OUTLINE = (255, 0, 0)
GAP_COLOUR = (128, 128, 128)


def render_prompt(template: str, view: str, coordinates: bool, subject: str, box) -> str:
    """The prompt for one region (see the module doc for the template rules)."""
    text = region_template(template, view, coordinates)
    return text.replace("{subject}", subject).replace("{box}", box_coordinates(box))


def subject(r: dict) -> str:
    if r["origin"] == "ocr" and r.get("ocr_text"):
        return f'text reading "{r["ocr_text"]}"'
    return r.get("phrase") or r.get("category") or "an object"


def region_view(image: Image.Image, box, cfg: RegionsConfig) -> Image.Image:
    """The picture the VLM gets for one region of `image` (the original, full size)."""
    side = cfg.view_max_side
    if cfg.view == "whole":  # the region is named by its box in the prompt
        whole = image.copy()
        whole.thumbnail((side, side), Image.Resampling.BICUBIC)
        return whole
    if cfg.view in ("composite", "marked"):
        whole = image.copy()
        whole.thumbnail((side, side), Image.Resampling.BICUBIC)
        w, h = whole.size
        width = max(2, round(max(w, h) / 150))
        rect = [box[0] * w, box[1] * h, max(box[2] * w, box[0] * w + 1), max(box[3] * h, box[1] * h + 1)]
        ImageDraw.Draw(whole).rectangle(rect, outline=OUTLINE, width=width)
        if cfg.view == "marked":
            return whole
    crop = crop_region(image, box, cfg.crop_padding)
    if cfg.view == "crop":
        return _fit(crop, side, side)
    crop = _fit(crop, side, whole.height)
    gap = max(4, side // 64)
    canvas = Image.new("RGB", (whole.width + gap + crop.width, whole.height), GAP_COLOUR)
    canvas.paste(whole, (0, 0))
    canvas.paste(crop, (whole.width + gap, (whole.height - crop.height) // 2))
    return canvas


def crop_region(image: Image.Image, box, padding: float) -> Image.Image:
    """The box plus `padding` of its size on every side, at least 2 px each way."""
    w, h = image.size
    pad_x = max((box[2] - box[0]) * w * padding, 2)
    pad_y = max((box[3] - box[1]) * h * padding, 2)
    x1, y1 = max(0, int(box[0] * w - pad_x)), max(0, int(box[1] * h - pad_y))
    x2, y2 = min(w, int(round(box[2] * w + pad_x))), min(h, int(round(box[3] * h + pad_y)))
    return image.crop((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)))


def _fit(image: Image.Image, max_w: int, max_h: int) -> Image.Image:
    """Scale (up or down) to fit max_w x max_h, keeping the aspect ratio."""
    scale = min(max_w / image.width, max_h / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


class RegionsStage(Stage):
    name = "regions"
    holds_model = True

    def __init__(self, config: PipelineConfig, engine: VisionLanguageEngine | None = None):
        super().__init__(config)
        self.captioner = config.regions.captioner
        if self.captioner is None:
            raise ValueError("regions.captioner is not set")
        self.prompt = load_prompt(config.prompts_path(), self.captioner.prompt)
        # An engine may be handed in (tests share one); otherwise this worker builds its own.
        self.engine = engine or make_vlm_engine(self.captioner)
        self.caption_model = f"{self.captioner.model}@{self.engine.revision}"
        self.ocr_model = f"{OCR_MODEL}@{ocr_revision()}"

    @classmethod
    def enabled(cls, config: PipelineConfig) -> bool:
        return config.regions.enabled

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        return config.regions.resources

    @classmethod
    def inputs(cls, config: PipelineConfig) -> tuple[str, ...]:
        return tuple(s for s, on in (("detect", config.detect.enabled), ("ocr", config.ocr.enabled)) if on)

    @classmethod
    def semantic(cls, config: PipelineConfig) -> dict:
        cfg = asdict(config.regions)
        for key in ("enabled", "requests_per_call", "resources"):
            cfg.pop(key)
        cfg["captioner"] = captioner_semantic(config.regions.captioner, config)
        cfg["ocr_revision"] = ocr_revision() if config.ocr.enabled else None  # names OCR-text captions
        return cfg

    @classmethod
    def provenance(cls, config: PipelineConfig) -> list[dict]:
        return [captioner_provenance(cls.name, config.regions.captioner)]

    @classmethod
    def clear(cls, batch: pa.Table) -> pa.Table:
        """Region captions go; OCR text stays on OCR regions (OCR's output), not on detector ones."""
        if "regions" not in batch.column_names:
            return batch
        cleared = [[{**r, "caption": None, "caption_model": None,
                     **({"ocr_text": None} if r["origin"] == "detector" else {})} for r in row]
                   for row in existing_regions(batch)]
        return set_column(batch, "regions", pa.array(cleared, regions_type()))

    def process(self, batch: pa.Table) -> pa.Table:
        cfg = self.config.regions
        regions = existing_regions(batch)
        documents = (batch.column("ocr_document").to_pylist() if "ocr_document" in batch.column_names
                     else [False] * batch.num_rows)
        jobs = []  # (row, region) pairs the VLM captions
        for row, row_regions in enumerate(regions):
            for r in row_regions:
                if r.get("caption") is not None:
                    continue
                if r["origin"] == "ocr" and (documents[row] or not cfg.caption_ocr_regions):
                    r.update(caption=r.get("ocr_text"), caption_model=self.ocr_model)
                else:
                    jobs.append((row, r))
        marks = RejectMarks(self.name, batch.num_rows)
        # Views are built per engine call, so a batch of large images never holds all its views.
        for start in range(0, len(jobs), cfg.requests_per_call):
            chunk = [(row, r) for row, r in jobs[start : start + cfg.requests_per_call] if not marks.is_rejected(row)]
            wanted = sorted({row for row, _ in chunk})
            rows, decoded = decode_rows(batch, "image_bytes", wanted, self.config.limits.max_pixels, marks)
            images = dict(zip(rows, decoded, strict=True))
            chunk = [(row, r) for row, r in chunk if row in images]
            if not chunk:
                continue
            views = [region_view(images[row], r["bbox"], cfg) for row, r in chunk]
            prompts = [render_prompt(self.prompt.text, cfg.view, cfg.coordinates, subject(r), r["bbox"])
                       for _, r in chunk]
            self._caption(views, prompts, [r for _, r in chunk])
        text_captions = set(cfg.text_captions)
        for row_regions in regions:
            fill_text_captions(row_regions, text_captions, self.ocr_model)
        return marks.apply(set_column(batch, "regions", pa.array(regions, regions_type())))

    def _caption(self, views: list[Image.Image], prompts: list[str], targets: list[dict]) -> None:
        """One engine call; a failed or empty generation leaves the region without a caption."""
        c = self.captioner
        spec = SamplingSpec(max_tokens=c.max_tokens, temperature=c.temperature, top_p=c.top_p,
                            seed=c.engine_options.seed)
        for r, gen in zip(targets, self.engine.generate(views, prompts, spec), strict=True):
            text = "" if gen.error else clean_caption(_CONTROL.sub("", gen.text))
            if text:
                r.update(caption=text, caption_model=self.caption_model)

