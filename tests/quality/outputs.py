"""Committed outputs whose rows a test writes one by one (captions and v3 signals set by hand),
in any shipped schema version: the dataset-level quality passes read nothing else."""

from __future__ import annotations

import json

import pyarrow as pa

from finecap import storage
from finecap.quality.signals import FLAGS
from finecap.schema import conform, load_schema
from tests.dataset.helpers import CHASH, parquet_bytes, row

SIGNAL_NAMES = ("phrases", "grounded_phrases", "grounding_rate", "ocr_quote_support", "ocr_ignored", "repetition",
                "min_caption_words", "max_caption_words", "region_agreement")


def caption(text: str, model: str = "m", revision: str = "sha256:1", prompt: str = "global_detailed/v1",
            **signals) -> dict:
    """A global caption; keyword arguments are its v3 `signals` (words, repetition, ...), none: null."""
    names = ("words", "repetition", "phrases", "grounded_phrases", "grounding_rate", "quotes", "quotes_supported")
    unknown = set(signals) - set(names)
    assert not unknown, unknown
    return {"text": text, "model": model, "model_revision": revision, "prompt_id": prompt, "num_tokens": 3,
            "signals": {name: signals.get(name) for name in names} if signals else None}


def signals(flags: tuple[str, ...] = (), **values) -> dict:
    """A row's v3 `signals`: the given values, every other one null (not applicable)."""
    assert set(values) <= set(SIGNAL_NAMES) and set(flags) <= set(FLAGS), (values, flags)
    return {**{name: values.get(name) for name in SIGNAL_NAMES}, "flags": list(flags)}


def write_rows(output: str, shard: str, rows: list[dict], version: str = "v3") -> None:
    """Commit shard `shard` of `output` holding one row per dict of `rows` (fields of the row:
    captions, signals, ...; keys default to SHARD-i). Fields `version` lacks are dropped."""
    schema = load_schema(version)
    full = [row(extra.pop("key", f"{shard}-{i}"), shard, version, **extra) for i, extra in enumerate(map(dict, rows))]
    full = [{k: v for k, v in r.items() if k in schema.arrow.names} for r in full]
    if version != "v3":
        for r in full:
            r["captions"] = [{k: v for k, v in c.items() if k != "signals"} for c in r["captions"]]
    data = conform(pa.Table.from_pylist(full, schema=schema.arrow), schema.arrow)
    storage.write_bytes(storage.join(output, "data", f"{shard}.parquet"), parquet_bytes(data))
    storage.write_bytes(storage.join(output, "rejects", f"{shard}.parquet"), parquet_bytes(schema.rejects_arrow.empty_table()))
    manifest = {"shard": shard, "rows_in": len(full), "rows_written": len(full), "rows_rejected": 0,
                "config_hash": CHASH, "schema_version": version, "models": [{"stage": "caption", "model": "m"}],
                "files": {"data": f"data/{shard}.parquet", "rejects": f"rejects/{shard}.parquet"}}
    storage.write_bytes(storage.join(output, "_manifest", f"{shard}.json"), json.dumps(manifest).encode())
