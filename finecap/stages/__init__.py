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
from finecap.stages.quality import QualityStage
from finecap.stages.regions import RegionsStage

# Local captions, in order: phrases from the captions, boxes for the phrases, text lines, then
# a caption for every region.
REGION_STAGES: tuple[type[Stage], ...] = (PhrasesStage, DetectStage, OcrStage, RegionsStage)
# The one registry: every stage by name, in pipeline order. Adding a stage is its module plus an
# entry here (and in pipeline_stages when it is not always on).
STAGES_BY_NAME: dict[str, type[Stage]] = {
    cls.name: cls for cls in (FetchStage, PrepareStage, FilterStage, CaptionStage, *REGION_STAGES, QualityStage)
}


def pipeline_stages(config: PipelineConfig) -> list[tuple[type[Stage], dict]]:
    """The enabled stages in pipeline order, each with its constructor arguments."""
    stages: list[tuple[type[Stage], dict]] = [(FetchStage, {})] if FetchStage.enabled(config) else []
    stages.append((PrepareStage, {}))
    if FilterStage.enabled(config):
        stages.append((FilterStage, {}))
    if CaptionStage.enabled(config):
        stages += [(CaptionStage, {"captioner": c.name}) for c in config.caption.captioners]
    stages += [(stage, {}) for stage in REGION_STAGES if stage.enabled(config)]
    if QualityStage.enabled(config):  # last: it reads what every other stage wrote
        stages.append((QualityStage, {}))
    return stages


def stage_models(config: PipelineConfig) -> list[dict]:
    """The models and prompts of the enabled stages, as each declares them, in pipeline order."""
    seen, models = set(), []
    for stage_cls, _ in pipeline_stages(config):
        if stage_cls.name not in seen:
            seen.add(stage_cls.name)
            models += stage_cls.provenance(config)
    return models


def stage_model(config: PipelineConfig, stage_cls: type[Stage], kwargs: dict) -> str | None:
    """The model one stage worker loads (None for stages without one)."""
    for entry in stage_cls.provenance(config):
        if kwargs.get("captioner", entry["name"]) == entry["name"]:
            return entry["model"]
    return None


__all__ = ["STAGES_BY_NAME", "Stage", "pipeline_stages", "stage_model", "stage_models"]
