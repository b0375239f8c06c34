"""Pipeline stages, all with the interface of `finecap.stages.base.Stage`."""

from __future__ import annotations

from finecap.config import PipelineConfig
from finecap.stages.base import Stage
from finecap.stages.caption import CaptionStage
from finecap.stages.prepare import PrepareStage


def pipeline_stages(config: PipelineConfig) -> list[tuple[type[Stage], dict]]:
    """The enabled stages in pipeline order, each with its constructor arguments."""
    stages: list[tuple[type[Stage], dict]] = [(PrepareStage, {})]
    if CaptionStage.enabled(config):
        stages += [(CaptionStage, {"captioner": c.name}) for c in config.caption.captioners]
    return stages


__all__ = ["Stage", "pipeline_stages"]
