"""caption: global recaptions by one configured captioner (one stage instance per captioner).

Reads the bounded `model_image` the prepare stage made and sends every row this captioner
takes to the engine in one call. A row is taken when the assignment rule gives it to this
captioner, or, with `hygiene.on_degenerate: retry`, when an earlier captioner's output for it
was degenerate and this captioner has not tried it yet. Usable captions are appended with full
provenance (model, revision, prompt id, tokens); degenerate ones are never written. The last
captioner rejects rows left with no usable caption, naming the failure.
"""

from __future__ import annotations

from dataclasses import asdict

import pyarrow as pa
from PIL import Image

from finecap.config import PipelineConfig, Resources
from finecap.engines.base import Generation, SamplingSpec, VisionLanguageEngine
from finecap.engines.factory import make_vlm_engine
from finecap.prompts import load_prompt
from finecap.stages.base import RejectMarks, Stage, set_column
from finecap.stages.caption_assign import assigned_captioners
from finecap.stages.caption_hygiene import clean_caption, degenerate_reason
from finecap.stages.declare import captioner_provenance, captioner_semantic
from finecap.stages.images import decode_rows

CAPTION_TYPE = pa.struct(
    [
        pa.field("text", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("model_revision", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("num_tokens", pa.int32(), nullable=False),
    ]
)
# Working columns carried between captioner stages (not written to the dataset).
TRIED = "_caption_tried"  # captioners that attempted the row
FAILED = "_caption_failed"  # open failures, "captioner: reason[: error]", cleared when a retry succeeds


class CaptionStage(Stage):
    name = "caption"
    holds_model = True

    def __init__(self, config: PipelineConfig, captioner: str, engine: VisionLanguageEngine | None = None):
        super().__init__(config)
        names = [c.name for c in config.caption.captioners]
        if captioner not in names:
            raise ValueError(f"no captioner named {captioner!r}")
        self.captioner = config.caption.captioners[names.index(captioner)]
        self.is_last = names.index(captioner) == len(names) - 1
        self.prompt = load_prompt(config.prompts_path(), self.captioner.prompt)
        # An engine may be handed in (tests share one); otherwise this worker builds its own.
        self.engine = engine or make_vlm_engine(self.captioner)

    @classmethod
    def enabled(cls, config: PipelineConfig) -> bool:
        return config.caption.enabled

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        return config.caption.resources

    # One fingerprint for all captioners: hygiene retries and weighted assignment couple them.
    @classmethod
    def inputs(cls, config: PipelineConfig) -> tuple[str, ...]:
        return ("prepare",)

    @classmethod
    def semantic(cls, config: PipelineConfig) -> dict:
        cfg = config.caption
        return {"captioners": [captioner_semantic(c, config) for c in cfg.captioners], "assign": cfg.assign,
                "captions_per_image": cfg.captions_per_image, "hygiene": asdict(cfg.hygiene)}

    @classmethod
    def provenance(cls, config: PipelineConfig) -> list[dict]:
        return [captioner_provenance(cls.name, c) for c in config.caption.captioners]

    @classmethod
    def clear(cls, batch: pa.Table) -> pa.Table:
        return set_column(batch, "captions", pa.array([[]] * batch.num_rows, pa.list_(CAPTION_TYPE)))

    def _takes(self, key: str, tried: list[str], failed: list[str]) -> bool:
        cfg = self.config.caption
        if self.captioner.name in tried:
            return False
        if self.captioner.name in assigned_captioners(key, cfg.captioners, cfg.assign, cfg.captions_per_image):
            return True
        return cfg.hygiene.on_degenerate == "retry" and bool(failed)

    def process(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        keys = batch.column("key").to_pylist()
        captions = _column(batch, "captions", n)
        tried = _column(batch, TRIED, n)
        failed = _column(batch, FAILED, n)
        marks = RejectMarks(self.name, n)
        rows = [i for i in range(n) if self._takes(keys[i], tried[i], failed[i])]
        rows, images = decode_rows(batch, "model_image", rows, self.config.limits.max_pixels, marks)
        generations = self._generate(images)
        for row, gen in zip(rows, generations, strict=True):
            tried[row] = tried[row] + [self.captioner.name]
            text = clean_caption(gen.text)
            reason = "engine_error" if gen.error else degenerate_reason(text, gen.finish_reason, self.config.caption.hygiene)
            if reason is None:
                captions[row] = captions[row] + [self._caption(text, gen)]
                failed[row] = failed[row][1:]  # a retry that succeeded closes one open failure
                continue
            # "captioner: reason", plus the engine's message, so the reject says why (e.g. HTTP 500).
            error = f": {gen.error[:300]}" if gen.error else ""
            failed[row] = failed[row] + [f"{self.captioner.name}: {reason}{error}"]
            detail = f"{self.captioner.name}: {gen.error or text[:300]!r}"
            if self.config.caption.hygiene.on_degenerate == "reject":
                marks.reject(row, reason, detail)
        if self.is_last:
            for row in range(n):
                if not captions[row] and not marks.is_rejected(row):
                    reason = failed[row][-1].split(": ", 2)[1] if failed[row] else "no_caption"
                    marks.reject(row, reason, "; ".join(failed[row]) or "no captioner was assigned")
        batch = set_column(batch, "captions", pa.array(captions, pa.list_(CAPTION_TYPE)))
        batch = set_column(batch, TRIED, pa.array(tried, pa.list_(pa.string())))
        batch = set_column(batch, FAILED, pa.array(failed, pa.list_(pa.string())))
        return marks.apply(batch)

    def _generate(self, images: list[Image.Image]) -> list[Generation]:
        if not images:
            return []
        spec = SamplingSpec(
            max_tokens=self.captioner.max_tokens,
            temperature=self.captioner.temperature,
            top_p=self.captioner.top_p,
            seed=self.captioner.engine_options.seed,
        )
        return self.engine.generate(images, [self.prompt.text] * len(images), spec)

    def _caption(self, text: str, gen: Generation) -> dict:
        return {
            "text": text,
            "model": self.captioner.model,
            "model_revision": self.engine.revision,
            "prompt_id": self.prompt.id,
            "num_tokens": gen.num_tokens,
        }


def _column(batch: pa.Table, name: str, n: int) -> list[list]:
    if name not in batch.column_names:
        return [[] for _ in range(n)]
    return [value or [] for value in batch.column(name).to_pylist()]
