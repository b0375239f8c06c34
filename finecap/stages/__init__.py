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


__all__ = ["Stage", "pipeline_stages"]
