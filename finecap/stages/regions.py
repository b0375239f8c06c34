"""regions: context-aware region captions from a VLM that sees the region and the whole image.

The views are in region_views.py (`regions.view`): by default one picture, the whole image with
the region outlined in red beside an enlarged crop of it (the crop is cut from the original
image, so small regions keep their detail); `whole` sends the image unmarked and names the region
by its box in the prompt, as FineViT-VL's box -> caption task does; `shared` sends the unmarked
whole image (the same for all regions of an image, so the engine's prefix cache computes it once)
and then the crop, the box in the prompt. With `regions.coordinates` the prompt also carries the
box as 0-1000 integers.
The prompt file (`regions.captioner.prompt`, e.g. region_context/v2) is a template: lines tagged
with views (`[composite]`, `[shared|whole]`, ...) or `[coordinates]` are kept only for those views
or when coordinates are on (finecap/prompts.py); `{subject}` becomes the phrase (or the OCR
text), `{box}` the box, and the shared view's two `{image}` lines say where its images go.

Every region without a caption gets one in a single engine call per batch (the engine batches
continuously). OCR regions are captioned with their text, as the paper does (and as stage III's
box -> OCR task reads them), with no VLM request; `caption_ocr_regions` sends those of images
that are not document-like to the VLM instead. Provenance:
`caption_model` is `MODEL@REVISION` (e.g. `tiny:vlm-a@sha256:0123...`; OCR-text captions name
`PP-OCRv4@1.4.4+sha256:...`); the prompt id and its hash are in every shard manifest. A row whose
image is missing or unreadable is rejected. A region whose generation fails (an engine error, an
empty answer, nothing left after hygiene, a refusal) keeps its box, so a rebuild with another
prompt can caption it and region indices stay stable, and is counted per reason in the shard
manifest's `region_caption_failures` (a `_counts_` working column, stages/base.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

import pyarrow as pa

from finecap.balance_selection import Selection, selection_digest_at
from finecap.box_format import box_coordinates
from finecap.config import PipelineConfig, Resources
from finecap.engines.base import RequestImage, SamplingSpec, VisionLanguageEngine
from finecap.engines.factory import make_vlm_engine
from finecap.engines.ocr import MODEL_NAME as OCR_MODEL
from finecap.engines.ocr import ocr_revision
from finecap.prompts import IMAGE_MARKER, load_prompt, region_template
from finecap.stages.base import COUNTS_PREFIX, RejectMarks, Stage, counts_column, set_column
from finecap.stages.caption_hygiene import caption_or_reason
from finecap.stages.declare import captioner_provenance, captioner_semantic
from finecap.stages.detect import existing_regions, regions_type
from finecap.stages.images import decode_rows
from finecap.stages.ocr import fill_text_captions
from finecap.stages.region_views import (  # noqa: F401 (re-exported: the view functions lived here)
    GAP_COLOUR,
    OUTLINE,
    crop_region,
    region_view,
    region_views,
)

# The manifest key of the failed region captions, and the reasons this stage adds to hygiene's.
CAPTION_FAILURES = "region_caption_failures"
ENGINE_ERROR = "engine_error"
NO_OCR_TEXT = "no_ocr_text"  # an OCR region without text (the OCR stage never makes one)


def render_prompt(template: str, view: str, coordinates: bool, subject: str, box) -> str:
    """The prompt for one region (see the module doc for the template rules). A subject (OCR text)
    that spells the image marker loses it: it would move the shared view's crop."""
    text = region_template(template, view, coordinates)
    subject = subject.replace(IMAGE_MARKER, "")
    return text.replace("{subject}", subject).replace("{box}", box_coordinates(box))


def subject(r: dict) -> str:
    if r["origin"] == "ocr" and r.get("ocr_text"):
        return f'text reading "{r["ocr_text"]}"'
    return r.get("phrase") or r.get("category") or "an object"


class RegionsStage(Stage):
    name = "regions"
    holds_model = True
    counts = (CAPTION_FAILURES,)

    def __init__(self, config: PipelineConfig, engine: VisionLanguageEngine | None = None):
        super().__init__(config)
        self.captioner = config.regions.captioner
        if self.captioner is None:
            raise ValueError("regions.captioner is not set")
        self.prompt = load_prompt(config.prompts_path(), self.captioner.prompt)
        # An engine may be handed in (tests share one); otherwise this worker builds its own.
        per_prompt = 2 if config.regions.view == "shared" else 1  # shared: the whole image, then the crop
        self.engine = engine or make_vlm_engine(self.captioner, images_per_prompt=per_prompt)
        self.caption_model = f"{self.captioner.model}@{self.engine.revision}"
        self.ocr_model = f"{OCR_MODEL}@{ocr_revision()}"
        selection = config.balance.selection
        self.selection = Selection(selection) if selection else None  # None: every region is captioned

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
        if config.balance.selection:  # which regions are captioned (equal digests: equal selections)
            cfg["balance_selection"] = selection_digest_at(config.balance.selection)
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
        failures = [Counter() for _ in range(batch.num_rows)]  # per row: reason -> regions
        for row, row_regions in enumerate(self._selected(batch, regions)):
            for r in row_regions:
                if r.get("caption") is not None:
                    continue
                if r["origin"] == "ocr" and (documents[row] or not cfg.caption_ocr_regions):
                    if r.get("ocr_text"):
                        r.update(caption=r["ocr_text"], caption_model=self.ocr_model)
                    else:  # only an input made elsewhere has one: the OCR engine drops empty lines
                        failures[row][NO_OCR_TEXT] += 1
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
            views = region_views(images, [(row, r["bbox"]) for row, r in chunk], cfg)
            prompts = [render_prompt(self.prompt.text, cfg.view, cfg.coordinates, subject(r), r["bbox"])
                       for _, r in chunk]
            self._caption(views, prompts, chunk, failures)
        text_captions = set(cfg.text_captions)
        for row_regions in regions:
            fill_text_captions(row_regions, text_captions, self.ocr_model)
        batch = set_column(batch, COUNTS_PREFIX + CAPTION_FAILURES, counts_column(failures))
        return marks.apply(set_column(batch, "regions", pa.array(regions, regions_type())))

    def _selected(self, batch: pa.Table, regions: list[list[dict]]) -> list[list[dict]]:
        """Per row, the regions the balanced selection keeps (all of them without a selection);
        the others keep their boxes and get no caption (the selection's summary counts them)."""
        if self.selection is None:
            return regions
        keys, shards = batch.column("key").to_pylist(), batch.column("shard").to_pylist()
        return [self.selection.filter_regions(shard, key, row_regions)
                for key, shard, row_regions in zip(keys, shards, regions, strict=True)]

    def _caption(self, views: list[RequestImage], prompts: list[str], targets: list[tuple[int, dict]],
                 failures: list[Counter]) -> None:
        """One engine call for (row, region) targets; a region whose generation gives no caption
        keeps none and is counted on its row under the reason."""
        c = self.captioner
        spec = SamplingSpec(max_tokens=c.max_tokens, temperature=c.temperature, top_p=c.top_p,
                            seed=c.engine_options.seed)
        for (row, r), gen in zip(targets, self.engine.generate(views, prompts, spec), strict=True):
            text, reason = ("", ENGINE_ERROR) if gen.error else caption_or_reason(gen.text)
            if reason:
                failures[row][reason] += 1
            else:
                r.update(caption=text, caption_model=self.caption_model)

