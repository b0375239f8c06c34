"""Committed outputs written directly with pyarrow in the shipped schema (no pipeline runs), so
a diff test states every caption, region and reject it compares."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from finecap.schema import load_schema

VLM_A = ("tiny:vlm-a", "global_detailed/v1")
VLM_B = ("tiny:vlm-b", "global_short/v1")


def caption(text: str, captioner: tuple[str, str] = VLM_A, revision: str = "sha256:aaaa") -> dict:
    model, prompt_id = captioner
    return {"text": text, "model": model, "model_revision": revision, "prompt_id": prompt_id,
            "num_tokens": len(text.split())}


def region(bbox, origin: str = "detector", category: str | None = "dog", caption_text: str | None = None) -> dict:
    return {"bbox": list(bbox), "phrase": category, "category": category, "score": 0.9, "origin": origin,
            "caption": caption_text, "caption_model": "tiny:vlm-a@sha256:aaaa" if caption_text else None,
            "ocr_text": caption_text if origin == "ocr" else None}


def row(key: str, captions: list[dict], regions: list[dict] | None = None) -> dict:
    return {"key": key, "url": f"file:///{key}.png", "image": {"bytes": b"\x89PNG not decoded by diff", "path": None},
            "width": 64, "height": 48, "sha256": f"sha-{key}", "captions": captions, "regions": regions or []}


def reject(key: str, shard: str, reason: str) -> dict:
    stage, why = reason.split("/")
    return {"key": key, "shard": shard, "stage": stage, "reason": why, "detail": "test"}


def write_shard(output: Path, shard: str, rows: list[dict], rejects: list[dict], data_name: str | None = None,
                schema_version: str | None = None, **facts) -> dict:
    """Write data and rejects in `schema_version` (default: the current one), then the manifest
    naming them (the commit marker); return the manifest."""
    schema = load_schema(schema_version) if schema_version else load_schema()
    files = {"data": f"data/{data_name or shard}.parquet", "rejects": f"rejects/{shard}.parquet"}
    for kind, records, arrow in (("data", rows, schema.arrow), ("rejects", rejects, schema.rejects_arrow)):
        path = output / files[kind]
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(records, schema=arrow), path)
    reasons: dict[str, int] = {}
    for r in rejects:
        reasons[f"{r['stage']}/{r['reason']}"] = reasons.get(f"{r['stage']}/{r['reason']}", 0) + 1
    manifest = {"shard": shard, "rows_in": len(rows) + len(rejects), "rows_written": len(rows),
                "rows_rejected": len(rejects), "rejects_by_reason": reasons, "files": files,
                "schema_version": schema.version, **facts}
    (output / "_manifest").mkdir(parents=True, exist_ok=True)
    (output / "_manifest" / f"{shard}.json").write_text(json.dumps(manifest))
    return manifest


def write_report(output: Path, name: str, content: dict) -> None:
    (output / "report").mkdir(parents=True, exist_ok=True)
    (output / "report" / name).write_text(json.dumps(content))
