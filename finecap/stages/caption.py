"""caption: global recaptions by one configured captioner (one stage instance per captioner).

Reads the bounded `model_image` the prepare stage made, sends the whole batch to the engine in
one call, and appends a caption with full provenance (model, revision, prompt id, tokens).
"""

from __future__ import annotations

import io

import pyarrow as pa
from PIL import Image

from finecap.config import PipelineConfig, Resources
from finecap.engines.base import SamplingSpec, VisionLanguageEngine
from finecap.engines.factory import make_vlm_engine
from finecap.prompts import load_prompt
from finecap.stages.base import RejectMarks, Stage, set_column

CAPTION_TYPE = pa.struct(
    [
        pa.field("text", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("model_revision", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("num_tokens", pa.int32(), nullable=False),
    ]
)


class CaptionStage(Stage):
    name = "caption"
    holds_model = True

    def __init__(self, config: PipelineConfig, captioner: str, engine: VisionLanguageEngine | None = None):
        super().__init__(config)
        matches = [c for c in config.caption.captioners if c.name == captioner]
        if not matches:
            raise ValueError(f"no captioner named {captioner!r}")
        self.captioner = matches[0]
        self.prompt = load_prompt(config.prompts_path(), self.captioner.prompt)
        # An engine may be handed in (tests share one); otherwise this worker builds its own.
        self.engine = engine or make_vlm_engine(self.captioner)

    @classmethod
    def enabled(cls, config: PipelineConfig) -> bool:
        return config.caption.enabled

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        return config.caption.resources

    def process(self, batch: pa.Table) -> pa.Table:
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in batch.column("model_image").to_pylist()]
        spec = SamplingSpec(
            max_tokens=self.captioner.max_tokens,
            temperature=self.captioner.temperature,
            top_p=self.captioner.top_p,
            seed=self.captioner.engine_options.seed,
        )
        generations = self.engine.generate(images, [self.prompt.text] * len(images), spec)
        marks = RejectMarks(self.name, batch.num_rows)
        existing = (
            batch.column("captions").to_pylist() if "captions" in batch.column_names else [[]] * batch.num_rows
        )
        captions = []
        for row, (before, gen) in enumerate(zip(existing, generations, strict=True)):
            text = gen.text.strip()
            if not text:
                marks.reject(row, "empty_caption", f"{self.captioner.name} wrote nothing")
            caption = {
                "text": text,
                "model": self.captioner.model,
                "model_revision": self.engine.revision,
                "prompt_id": self.prompt.id,
                "num_tokens": gen.num_tokens,
            }
            captions.append((before or []) + [caption])
        batch = set_column(batch, "captions", pa.array(captions, pa.list_(CAPTION_TYPE)))
        return marks.apply(batch)
