"""filter: keep images that are large enough, not too elongated and of ordinary quality.

The rules read what `prepare` measured (size after EXIF orientation, `quality` scores), so the
stage decodes nothing. Defaults are the paper's size rules (short side >= 448, aspect ratio in
[1/3, 3]) and quality thresholds measured to drop about 3% of ordinary photos (docs/filters.md).
A rule whose threshold is null is off. Each rejected row says which rule and by how much.
"""

from __future__ import annotations

from dataclasses import asdict

import pyarrow as pa

from finecap.config import FilterConfig, PipelineConfig, Resources
from finecap.stages.base import RejectMarks, Stage


def filter_reason(width: int, height: int, quality: dict | None, cfg: FilterConfig) -> tuple[str, str] | None:
    """(reason, detail) for the first rule the image breaks, or None when it is kept."""
    short, long = min(width, height), max(width, height)
    if short < cfg.min_short_side:
        return "too_small", f"short side {short} px < filter.min_short_side={cfg.min_short_side}"
    if long / short > cfg.max_aspect_ratio:
        return "bad_aspect_ratio", f"aspect ratio {long / short:.2f} > filter.max_aspect_ratio={cfg.max_aspect_ratio}"
    quality = quality or {}
    # Exposure first: a very dark or blown-out image also has little contrast, so it looks blurry
    # too, and the exposure reason is the one that says what is wrong.
    rules = (
        ("too_dark", "brightness", "min_brightness", lambda v, t: v < t),
        ("too_bright", "brightness", "max_brightness", lambda v, t: v > t),
        ("clipped", "clipped", "max_clipped", lambda v, t: v > t),
        ("blurry", "blur", "min_blur", lambda v, t: v < t),
        ("oversaturated", "saturation", "max_saturation", lambda v, t: v > t),
    )
    for reason, score, key, breaks in rules:
        threshold, value = getattr(cfg, key), quality.get(score)
        if threshold is not None and value is not None and breaks(value, threshold):
            return reason, f"{score} {value:.4g} breaks filter.{key}={threshold}"
    return None


class FilterStage(Stage):
    name = "filter"

    @classmethod
    def enabled(cls, config: PipelineConfig) -> bool:
        return config.filter.enabled

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        # Same placement as prepare, so Ray Data fuses the two into one task.
        return config.prepare.resources

    @classmethod
    def inputs(cls, config: PipelineConfig) -> tuple[str, ...]:
        return ("prepare",)

    @classmethod
    def semantic(cls, config: PipelineConfig) -> dict:
        return {k: v for k, v in asdict(config.filter).items() if k != "enabled"}

    def process(self, batch: pa.Table) -> pa.Table:
        marks = RejectMarks(self.name, batch.num_rows)
        columns = batch.select(["width", "height", "quality"]).to_pylist()
        for row, values in enumerate(columns):
            found = filter_reason(values["width"], values["height"], values["quality"], self.config.filter)
            if found:
                marks.reject(row, *found)
        return marks.apply(batch)
