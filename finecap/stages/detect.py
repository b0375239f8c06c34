"""detect: ground each image's noun phrases; boxes become `detector` regions.

Two engines (`detect.engine`): Grounding DINO (`detect.model`), or a VLM trained to ground captions
(`detect.grounder`, engines/vlm_grounder.py: FineViT-VL's caption -> box task), one request per
phrase. The engine returns candidate boxes (thresholded, labelled with a phrase); this stage drops boxes
under `min_box_area`, runs NMS at `nms_iou` (across phrases by default, so one object is one
region), keeps the `max_regions` best, and writes them as regions with the phrase, its category
and the score. Boxes are [x1, y1, x2, y2] normalised to [0, 1], so they hold for the original
image whatever size the detector saw. Rows are never rejected: an image without phrases or
without confident boxes simply has no detector regions.
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa

from finecap.config import PipelineConfig, Resources
from finecap.engines.detector import GroundingDinoEngine
from finecap.engines.detector_grounding import Candidate, select
from finecap.engines.vlm_grounder import VlmGrounder
from finecap.prompts import load_prompt
from finecap.schema import load_schema
from finecap.stages.base import RejectMarks, Stage, set_column
from finecap.stages.declare import captioner_provenance, captioner_semantic, revision_of
from finecap.stages.images import decode_rows


@cache
def regions_type() -> pa.DataType:
    """The `regions` column type (a list of region structs), from the schema: one definition."""
    return load_schema().arrow.field("regions").type


def existing_regions(batch: pa.Table) -> list[list[dict]]:
    if "regions" not in batch.column_names:
        return [[] for _ in range(batch.num_rows)]
    return [list(value or []) for value in batch.column("regions").to_pylist()]


def drop_regions(batch: pa.Table, origin: str) -> pa.Table:
    """`batch` without its regions of `origin` (a rebuilt stage writes them again)."""
    if "regions" not in batch.column_names:
        return batch
    kept = [[r for r in row if r["origin"] != origin] for row in existing_regions(batch)]
    return set_column(batch, "regions", pa.array(kept, regions_type()))


def region(bbox, origin: str, score: float | None = None, phrase: str | None = None,
           category: str | None = None, ocr_text: str | None = None) -> dict:
    """A region dict with every schema field; captions come later (regions stage)."""
    return {"bbox": [round(float(v), 6) for v in bbox], "phrase": phrase, "category": category,
            "score": score, "origin": origin, "caption": None, "caption_model": None, "ocr_text": ocr_text}


class DetectStage(Stage):
    name = "detect"
    holds_model = True

    def __init__(self, config: PipelineConfig, engine: GroundingDinoEngine | VlmGrounder | None = None):
        super().__init__(config)
        cfg = config.detect
        # An engine may be handed in (tests share one); otherwise this worker builds its own.
        if engine is None and cfg.engine == "vlm":
            engine = VlmGrounder(cfg.grounder, load_prompt(config.prompts_path(), cfg.grounder.prompt).text)
        self.engine = engine or GroundingDinoEngine(
            cfg.model, cfg.device, cfg.dtype, cfg.inference_batch_size, cfg.max_text_tokens
        )

    @classmethod
    def enabled(cls, config: PipelineConfig) -> bool:
        return config.detect.enabled

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        return config.detect.resources

    @classmethod
    def inputs(cls, config: PipelineConfig) -> tuple[str, ...]:
        return ("prepare", "phrases")

    @classmethod
    def semantic(cls, config: PipelineConfig) -> dict:
        cfg = config.detect
        selection = {"box_threshold": cfg.box_threshold, "nms_iou": cfg.nms_iou,
                     "nms_across_phrases": cfg.nms_across_phrases, "min_box_area": cfg.min_box_area,
                     "max_regions": cfg.max_regions}
        if cfg.engine == "vlm":
            return {"engine": "vlm", "grounder": captioner_semantic(cfg.grounder, config), **selection}
        return {"model": cfg.model, "revision": revision_of(cfg.model), "dtype": cfg.dtype,
                "text_threshold": cfg.text_threshold, "max_text_tokens": cfg.max_text_tokens, **selection}

    @classmethod
    def provenance(cls, config: PipelineConfig) -> list[dict]:
        cfg = config.detect
        if cfg.engine == "vlm":
            return [captioner_provenance(cls.name, cfg.grounder)]
        return [{"stage": cls.name, "name": "detector", "model": cfg.model, "revision": revision_of(cfg.model)}]

    @classmethod
    def clear(cls, batch: pa.Table) -> pa.Table:
        return drop_regions(batch, "detector")

    def process(self, batch: pa.Table) -> pa.Table:
        cfg = self.config.detect
        phrases = [list(p or []) for p in _column(batch, "phrases")]
        regions = existing_regions(batch)
        marks = RejectMarks(self.name, batch.num_rows)
        rows = [i for i, p in enumerate(phrases) if p]
        rows, images = decode_rows(batch, "model_image", rows, self.config.limits.max_pixels, marks)
        texts = [[p["phrase"] for p in phrases[i]] for i in rows]
        found = self._candidates(images, texts, rows, marks) if rows else []
        for row, candidates in zip(rows, found, strict=True):
            kept = select(candidates, cfg.min_box_area, cfg.nms_iou, cfg.nms_across_phrases, cfg.max_regions)
            for c in kept:
                p = phrases[row][c.phrase]
                regions[row].append(region(c.box, "detector", c.score, p["phrase"], p["category"]))
            # Detector regions first, as a first build orders them, also when a rebuild keeps OCR's.
            regions[row].sort(key=lambda r: r["origin"] != "detector")
        return marks.apply(set_column(batch, "regions", pa.array(regions, regions_type())))

    def _candidates(self, images, texts: list[list[str]], rows: list[int], marks: RejectMarks) -> list[list[Candidate]]:
        cfg = self.config.detect
        if not isinstance(self.engine, VlmGrounder):
            return self.engine.detect(images, texts, cfg.box_threshold, cfg.text_threshold)
        groundings = self.engine.ground(images, texts, cfg.box_threshold)
        for row, grounding in zip(rows, groundings, strict=True):
            if grounding.error:
                marks.reject(row, "grounder request failed", grounding.error)
        return [g.candidates for g in groundings]


def _column(batch: pa.Table, name: str) -> list:
    """A working column's values, or nulls when no row of the batch reached the stage adding it."""
    return batch.column(name).to_pylist() if name in batch.column_names else [None] * batch.num_rows
