"""FineCap outputs written directly with pyarrow and a shipped schema version, so a test decides
every file name, manifest and schema version (the pipeline's writer always uses the current ones)."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from finecap import storage
from finecap.schema import conform, load_schema

CHASH = "sha256:test"


def row(key: str, shard: str, version: str = "v1", image: bytes = b"\x89PNG-not-decoded", **extra) -> dict:
    """A row every required field of `version` is set in (validate accepts it)."""
    provenance = {"finecap_version": "0.1.0", "schema_version": version, "config_hash": CHASH, "shard": shard}
    if version != "v1":
        provenance.update(fingerprints=[{"stage": "caption", "fingerprint": "sha256:f"}], version="ver-1")
    caption = {"text": f"caption of {key}", "model": "m", "model_revision": "sha256:1",
               "prompt_id": "global_detailed/v1", "num_tokens": 3}
    return {"key": key, "url": f"file:///{key}.png", "source": "test", "image": {"bytes": image, "path": None},
            "width": 32, "height": 24, "sha256": f"sha256:{key}", "captions": [caption], "regions": [],
            "provenance": provenance, **extra}


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def write_shard(output: str, shard: str, keys: list[str], version: str = "v1", *, name: str | None = None,
                rejected: tuple[str, ...] = (), files: bool = True, commit: bool = True, **extra) -> dict:
    """Write one shard of `version` rows under `output`; its files are data/NAME.parquet and
    rejects/NAME.parquet (NAME defaults to the shard id). `files=False` leaves `files` out of the
    manifest (older outputs); `commit=False` writes no manifest (a shard still being written)."""
    schema, name = load_schema(version), name or shard
    rows = [row(k, shard, version, **extra) for k in keys]
    data = conform(pa.Table.from_pylist(rows, schema=schema.arrow), schema.arrow) if rows else schema.arrow.empty_table()
    rejects = pa.Table.from_pylist(
        [{"key": k, "url": None, "source": "test", "shard": shard, "stage": "prepare", "reason": "decode_error",
          "detail": None} for k in rejected], schema=schema.rejects_arrow)
    storage.write_bytes(storage.join(output, "data", f"{name}.parquet"), parquet_bytes(data))
    storage.write_bytes(storage.join(output, "rejects", f"{name}.parquet"), parquet_bytes(rejects))
    manifest = {"shard": shard, "rows_in": len(keys) + len(rejected), "rows_written": len(keys),
                "rows_rejected": len(rejected), "config_hash": CHASH, "schema_version": version,
                "models": [{"stage": "caption", "model": "m"}]}
    if files:
        manifest["files"] = {"data": f"data/{name}.parquet", "rejects": f"rejects/{name}.parquet"}
    if commit:
        storage.write_bytes(storage.join(output, "_manifest", f"{shard}.json"), json.dumps(manifest).encode())
    return manifest
