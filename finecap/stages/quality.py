"""quality: signals of each row's captions and regions, measured without ground truth.

The last stage: it reads what every earlier one wrote (captions, the working `phrases`, detector
and OCR regions, region captions) and writes `signals` per row, `signals` per caption and
`agreement` per region (schema v3; the rules are finecap/quality/signals.py). Thresholds in
`quality.*` flag a row (`signals.flags`) or, with `quality.action: reject`, reject it with the
first broken rule as the reason and every broken rule in the detail. It loads no model, so it
runs as small CPU tasks.
"""

from __future__ import annotations

from dataclasses import asdict

import pyarrow as pa

from finecap.config import PipelineConfig, Resources
from finecap.quality.signals import broken_thresholds, row_signals
from finecap.schema import load_schema
from finecap.stages.base import RejectMarks, Stage, set_column
from finecap.stages.detect import existing_regions, regions_type


def _field_type(name: str) -> pa.DataType:
    return load_schema().arrow.field(name).type


class QualityStage(Stage):
    name = "quality"

    @classmethod
    def enabled(cls, config: PipelineConfig) -> bool:
        return config.quality.enabled and config.caption.enabled  # nothing to measure without captions

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        return config.quality.resources

    @classmethod
    def inputs(cls, config: PipelineConfig) -> tuple[str, ...]:
        stages = (("caption", True), ("phrases", config.phrases.enabled), ("detect", config.detect.enabled),
                  ("ocr", config.ocr.enabled), ("regions", config.regions.enabled))
        return tuple(name for name, on in stages if on)

    @classmethod
    def semantic(cls, config: PipelineConfig) -> dict:
        return {k: v for k, v in asdict(config.quality).items() if k not in ("enabled", "resources")}

    @classmethod
    def clear(cls, batch: pa.Table) -> pa.Table:
        """Kept rows without signals (a rerun writes them again; a disabled stage leaves none)."""
        if "signals" in batch.column_names:
            batch = set_column(batch, "signals", pa.nulls(batch.num_rows, _field_type("signals")))
        if "captions" in batch.column_names:
            captions = [[{**c, "signals": None} for c in row or []] for row in batch.column("captions").to_pylist()]
            batch = set_column(batch, "captions", pa.array(captions, _field_type("captions")))
        if "regions" in batch.column_names:
            regions = [[{**r, "agreement": None} for r in row] for row in existing_regions(batch)]
            batch = set_column(batch, "regions", pa.array(regions, regions_type()))
        return batch

    def process(self, batch: pa.Table) -> pa.Table:
        cfg = self.config.quality
        inputs = set(self.inputs(self.config))
        captions = [list(row or []) for row in batch.column("captions").to_pylist()]
        phrases = (batch.column("phrases").to_pylist() if "phrases" in batch.column_names
                   else [None] * batch.num_rows)
        regions = existing_regions(batch)
        marks = RejectMarks(self.name, batch.num_rows)
        signals = []
        for row in range(batch.num_rows):
            found, per_caption, agreements = row_signals(
                captions[row], phrases[row] if "phrases" in inputs else None, regions[row],
                detected="detect" in inputs, ocr_ran="ocr" in inputs, min_score=cfg.grounding_min_score)
            broken = broken_thresholds(found, cfg)
            signals.append({**found, "flags": [flag for flag, _ in broken]})
            for caption, caption_signals in zip(captions[row], per_caption, strict=True):
                caption["signals"] = caption_signals
            for region, agreement in zip(regions[row], agreements, strict=True):
                region["agreement"] = agreement
            if broken and cfg.action == "reject":
                marks.reject(row, broken[0][0], "; ".join(detail for _, detail in broken))
        batch = set_column(batch, "captions", pa.array(captions, _field_type("captions")))
        batch = set_column(batch, "regions", pa.array(regions, regions_type()))
        batch = set_column(batch, "signals", pa.array(signals, _field_type("signals")))
        return marks.apply(batch)
