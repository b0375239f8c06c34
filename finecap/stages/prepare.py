"""prepare: decode, normalise to RGB, bound pixels, hash, score quality, make the model copy.

Runs on CPUs before every model stage, so engines never wait on decoding. The original bytes
are kept untouched for the dataset; model stages read `model_image`. Decoding is the untrusted
step: only prepare.allowed_formats are opened (EPS never), and limits.max_pixels is checked
from the header before any pixel is decoded (finecap/image_ops.py).
"""

from __future__ import annotations

import pyarrow as pa

from finecap.config import PipelineConfig, Resources
from finecap.image_ops import (
    ImageRejected,
    decode_rgb,
    model_copy,
    perceptual_hash,
    pixel_sha256,
    quality_scores,
)
from finecap.sources.detect import peek_kind
from finecap.stages.base import RejectMarks, Stage, set_column

QUALITY_TYPE = pa.struct(
    [pa.field(n, pa.float32()) for n in ("blur", "brightness", "clipped", "saturation")]
)


class PrepareStage(Stage):
    name = "prepare"
    transient = True  # the model copy (`model_image`) is not kept: caption and detect need it again

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        return config.prepare.resources

    @classmethod
    def inputs(cls, config: PipelineConfig) -> tuple[str, ...]:
        return ("fetch",) if peek_kind(config.source) == "urls" else ("source",)

    @classmethod
    def semantic(cls, config: PipelineConfig) -> dict:
        cfg = config.prepare
        return {"max_pixels": config.limits.max_pixels, "max_bytes": cfg.max_bytes,
                "allowed_formats": list(cfg.allowed_formats), "model_max_side": cfg.model_max_side,
                "model_image_format": cfg.model_image_format}

    def process(self, batch: pa.Table) -> pa.Table:
        cfg = self.config.prepare
        marks = RejectMarks(self.name, batch.num_rows)
        out = {"width": [], "height": [], "sha256": [], "phash": [], "quality": [], "model_image": []}
        for row, data in enumerate(batch.column("image_bytes").to_pylist()):
            try:
                if not data:
                    raise ImageRejected("empty", "no image bytes")
                image = decode_rgb(data, self.config.limits.max_pixels, cfg.allowed_formats)
                values = {
                    "width": image.width,
                    "height": image.height,
                    "sha256": pixel_sha256(image),
                    "phash": perceptual_hash(image),
                    "quality": quality_scores(image).as_dict(),
                    "model_image": model_copy(image, cfg.model_max_side, cfg.model_image_format),
                }
            except ImageRejected as exc:
                marks.reject(row, exc.reason, exc.detail)
                values = dict.fromkeys(out)
            for name, value in values.items():
                out[name].append(value)
        types = {
            "width": pa.int32(),
            "height": pa.int32(),
            "sha256": pa.string(),
            "phash": pa.string(),
            "quality": QUALITY_TYPE,
            "model_image": pa.binary(),
        }
        for name, values in out.items():
            batch = set_column(batch, name, pa.array(values, types[name]))
        return marks.apply(batch)
