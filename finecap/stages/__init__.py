"""Pipeline stages, all with the interface of `finecap.stages.base.Stage`."""

from __future__ import annotations

from finecap.config import PipelineConfig
from finecap.stages.base import Stage
from finecap.stages.caption import CaptionStage
from finecap.stages.detect import DetectStage
from finecap.stages.fetch import FetchStage
from finecap.stages.filters import FilterStage
from finecap.stages.ocr import OcrStage
from finecap.stages.phrases import PhrasesStage
from finecap.stages.prepare import PrepareStage
from finecap.stages.regions import RegionsStage

# Local captions, in order: phrases from the captions, boxes for the phrases, text lines, then
# a caption for every region.
REGION_STAGES: tuple[type[Stage], ...] = (PhrasesStage, DetectStage, OcrStage, RegionsStage)


def pipeline_stages(config: PipelineConfig) -> list[tuple[type[Stage], dict]]:
    """The enabled stages in pipeline order, each with its constructor arguments."""
    stages: list[tuple[type[Stage], dict]] = [(FetchStage, {})] if FetchStage.enabled(config) else []
    stages.append((PrepareStage, {}))
    if FilterStage.enabled(config):
        stages.append((FilterStage, {}))
    if CaptionStage.enabled(config):
        stages += [(CaptionStage, {"captioner": c.name}) for c in config.caption.captioners]
    stages += [(stage, {}) for stage in REGION_STAGES if stage.enabled(config)]
    return stages


def stage_models(config: PipelineConfig) -> list[dict]:
    """The models the enabled stages use, in pipeline order: stage, name, model (and prompt_id)."""
    models: list[dict] = []
    if config.caption.enabled:
        models += [{"stage": "caption", "name": c.name, "model": c.model, "prompt_id": c.prompt}
                   for c in config.caption.captioners]
    if config.detect.enabled:
        models.append({"stage": "detect", "name": "detector", "model": config.detect.model})
    if config.ocr.enabled:
        models.append({"stage": "ocr", "name": "ocr", "model": "PP-OCRv4 (rapidocr-onnxruntime)"})
    if config.regions.enabled and config.regions.captioner:
        c = config.regions.captioner
        models.append({"stage": "regions", "name": c.name, "model": c.model, "prompt_id": c.prompt})
    return models


def stage_model(config: PipelineConfig, stage_cls: type[Stage], kwargs: dict) -> str | None:
    """The model one stage worker loads (None for stages without one)."""
    if stage_cls is PhrasesStage:
        return config.phrases.spacy_model
    for entry in stage_models(config):
        if entry["stage"] == stage_cls.name and kwargs.get("captioner", entry["name"]) == entry["name"]:
            return entry["model"]
    return None


__all__ = ["Stage", "pipeline_stages", "stage_model", "stage_models"]
