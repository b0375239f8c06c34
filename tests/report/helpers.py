"""Committed outputs with known captions and regions, built through the real source, prepare,
piece writer and shard commit (no model runs: captions and regions are given)."""

from __future__ import annotations

import io

import pyarrow as pa
from PIL import Image

from finecap.runtime.commit import ShardProgress, commit_shard
from finecap.schema import SCHEMA_VERSION, load_schema
from finecap.sources import make_source
from finecap.stages.caption import CAPTION_TYPE
from finecap.stages.detect import region, regions_type
from finecap.stages.prepare import PrepareStage
from tests.runtime.helpers import stage_pieces

CHASH = "sha256:test"
MODELS = [
    {"stage": "caption", "name": "tiny-a", "model": "tiny:vlm-a", "revision": "sha256:aaaa", "prompt_id": "global_detailed/v1"},
]


def solid_png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def caption(text: str, tokens: int, model: str = "tiny:vlm-a") -> dict:
    return {"text": text, "model": model, "model_revision": "sha256:aaaa", "prompt_id": "global_detailed/v1",
            "num_tokens": tokens}


def detector(bbox, phrase: str, caption_text: str | None = None) -> dict:
    r = region(bbox, "detector", 0.9, phrase, phrase.split()[-1])
    return {**r, "caption": caption_text, "caption_model": "tiny:vlm-a@sha256:aaaa" if caption_text else None}


def ocr(bbox, text: str) -> dict:
    r = region(bbox, "ocr", 0.95, None, "text", ocr_text=text)
    return {**r, "caption": text, "caption_model": "PP-OCRv4@1.4.4"}


def write_output(config, captions_by_key: dict | None = None, regions_by_key: dict | None = None,
                 signals_by_key: dict | None = None) -> list[dict]:
    """Commit every shard of `config`'s source; return the manifests. Rows of `signals_by_key` get
    those v3 `signals` (tests.quality.outputs.signals builds one), every other row null signals."""
    captions_by_key, regions_by_key, signals_by_key = captions_by_key or {}, regions_by_key or {}, signals_by_key or {}
    source = make_source(config)
    facts = {"config_hash": CHASH, "finecap_version": "0.1.0", "schema_version": SCHEMA_VERSION,
             "source": config.source.uri, "models": MODELS, "prompts": {"global_detailed/v1": "sha256:pppp"}}
    manifests = []
    for spec in source.plan():
        rows = PrepareStage(config)(source.read(spec))
        keys = rows.column("key").to_pylist()
        captions = [captions_by_key.get(k, [caption("a scene", 4)]) for k in keys]
        regions = [regions_by_key.get(k, []) for k in keys]
        rows = rows.append_column("captions", pa.array(captions, pa.list_(CAPTION_TYPE)))
        rows = rows.append_column("regions", pa.array(regions, regions_type()))
        signals = [signals_by_key.get(k) for k in keys]
        rows = rows.append_column("signals", pa.array(signals, load_schema().arrow.field("signals").type))
        progress = ShardProgress(spec.shard_id, spec.num_rows)
        for piece in stage_pieces(config, rows, CHASH):
            progress.add(piece)
        manifests.append(commit_shard(config.output.uri, progress, facts, None))
    return manifests
