"""write: turn finished rows into finecap/v1 rows and rejects, staged per batch.

A batch can hold rows of several shards and a shard's rows arrive in several batches, so this
stage writes each (batch, shard) piece to a uniquely named staging file and returns one small
row per piece: which shard, which files, which keys. The driver commits a shard (runtime/commit.py)
once the keys of all its input rows have arrived. A retried task leaves orphan pieces nobody
reports; the commit ignores them, so nothing is doubled.
"""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from finecap import __version__, storage
from finecap.config import PipelineConfig
from finecap.schema import conform, load_schema
from finecap.stages.base import ensure_reject_columns

PIECE_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.string()),
        pa.field("data_file", pa.string()),
        pa.field("rejects_file", pa.string()),
        pa.field("keys", pa.list_(pa.string())),
        pa.field("rows_written", pa.int64()),
        pa.field("rows_rejected", pa.int64()),
        pa.field("stage_seconds", pa.string()),  # JSON {stage: seconds summed over the piece's rows}
    ]
)


def staging_dir(output_uri: str, shard: str) -> str:
    return storage.join(output_uri, "_staging", shard)


class PieceWriter:
    """Stages one batch's rows; a plain callable (Ray runs it as a task)."""

    def __init__(self, config: PipelineConfig, config_hash: str):
        self.output = config.output.uri
        self.compression = None if config.output.compression == "none" else config.output.compression
        self.schema = load_schema()
        self.provenance = {
            "finecap_version": __version__,
            "schema_version": self.schema.version,
            "config_hash": config_hash,
        }

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch = ensure_reject_columns(batch)
        pieces = []
        shards = batch.column("shard")
        for shard in pc.unique(shards).to_pylist():
            pieces.append(self._write_piece(shard, batch.filter(pc.equal(shards, shard))))
        return pa.Table.from_pylist(pieces, schema=PIECE_SCHEMA)

    def _write_piece(self, shard: str, rows: pa.Table) -> dict:
        rejected_mask = pc.is_valid(rows.column("reject_stage"))
        kept, rejected = rows.filter(pc.invert(rejected_mask)), rows.filter(rejected_mask)
        piece = uuid.uuid4().hex
        base = staging_dir(self.output, shard)
        data_file = storage.join(base, f"{piece}.data.parquet")
        rejects_file = storage.join(base, f"{piece}.rejects.parquet")
        self._write(data_file, self.data_rows(kept, shard))
        self._write(rejects_file, reject_rows(rejected))
        seconds = Counter()
        for name in rows.column_names:
            if name.startswith("_seconds_"):
                seconds[name.removeprefix("_seconds_")] += float(pc.sum(rows.column(name)).as_py() or 0.0)
        return {
            "shard": shard,
            "data_file": data_file,
            "rejects_file": rejects_file,
            "keys": rows.column("key").to_pylist(),
            "rows_written": kept.num_rows,
            "rows_rejected": rejected.num_rows,
            "stage_seconds": json.dumps(seconds),
        }

    def data_rows(self, kept: pa.Table, shard: str) -> pa.Table:
        n = kept.num_rows
        image = pa.StructArray.from_arrays(
            [kept.column("image_bytes").combine_chunks(), kept.column("image_path").combine_chunks()],
            names=["bytes", "path"],
        )
        provenance = {**self.provenance, "shard": shard}
        columns = {
            "key": kept.column("key"),
            "url": kept.column("url"),
            "source": kept.column("source"),
            "alt_text": kept.column("alt_text"),
            "image": image,
            "captions": kept.column("captions") if "captions" in kept.column_names else [[]] * n,
            "regions": kept.column("regions") if "regions" in kept.column_names else [[]] * n,
            "provenance": [provenance] * n,
        }
        for name in ("width", "height", "sha256", "phash", "quality"):
            # Absent when every row of the batch was rejected before prepare (stages skip
            # empty batches); conform() then gives the empty table its schema.
            if name in kept.column_names:
                columns[name] = kept.column(name)
        table = pa.table({k: columns[k] for k in columns})
        return conform(table, self.schema.arrow)

    def _write(self, uri: str, table: pa.Table) -> None:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression=self.compression)
        storage.write_bytes(uri, buffer.getvalue())


def reject_rows(rejected: pa.Table) -> pa.Table:
    schema = load_schema().rejects_arrow
    table = pa.table(
        {
            "key": rejected.column("key"),
            "url": rejected.column("url"),
            "source": rejected.column("source"),
            "shard": rejected.column("shard"),
            "stage": rejected.column("reject_stage"),
            "reason": rejected.column("reject_reason"),
            "detail": rejected.column("reject_detail"),
        }
    )
    return conform(table, schema)
