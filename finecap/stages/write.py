"""write: turn finished rows into finecap/v1 rows and rejects, staged per batch.

A batch can hold rows of several shards and a shard's rows arrive in several batches, so this
stage writes each (batch, shard) piece to a uniquely named staging file and returns one small
row per piece: which shard, which files, which keys. The driver commits a shard (runtime/commit.py)
once the keys of all its input rows have arrived. A retried task leaves orphan pieces nobody
reports; the commit ignores them, so nothing is doubled. Each run stages under its own folder
(`_staging/RUN/SHARD/`, RUN the id of its output lock), so a run never reads or deletes another's.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from finecap import __version__, storage
from finecap.config import PipelineConfig
from finecap.redact import public_uri, redact_text
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


STAGING = "_staging"
# The staging id of pieces written outside a locked build (tests, benchmarks); a build stages
# under its lock's owner id, so a run only ever reads and deletes its own pieces.
ADHOC_RUN = "adhoc"


def run_staging_dir(output_uri: str, run_id: str) -> str:
    return storage.join(output_uri, STAGING, run_id)


def staging_dir(output_uri: str, shard: str, run_id: str = ADHOC_RUN) -> str:
    return storage.join(run_staging_dir(output_uri, run_id), shard)


class PieceWriter:
    """Stages one batch's rows under `_staging/RUN/SHARD/`; a plain callable (Ray runs it as a task)."""

    def __init__(self, config: PipelineConfig, config_hash: str, run_id: str = ADHOC_RUN):
        self.output = config.output.uri
        self.run_id = run_id
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
            pieces.append(self._write_piece(shard, where(batch, pc.equal(shards, shard))))
        return pa.Table.from_pylist(pieces, schema=PIECE_SCHEMA)

    def _write_piece(self, shard: str, rows: pa.Table) -> dict:
        rejected_mask = pc.is_valid(rows.column("reject_stage"))
        kept, rejected = where(rows, pc.invert(rejected_mask)), rows.filter(rejected_mask)
        piece = uuid.uuid4().hex
        base = staging_dir(self.output, shard, self.run_id)
        data_file = storage.join(base, f"{piece}.data.arrow")
        rejects_file = storage.join(base, f"{piece}.rejects.arrow")
        write_piece(data_file, self.data_rows(kept, shard))
        write_piece(rejects_file, reject_rows(rejected))
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
            [one_array(kept.column("image_bytes")), one_array(kept.column("image_path"))],
            names=["bytes", "path"],
        )
        provenance = {**self.provenance, "shard": shard}
        columns = {
            "key": kept.column("key"),
            "url": kept.column("url"),
            "source": pa.array([public_uri(u) for u in kept.column("source").to_pylist()], pa.string()),
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


def write_piece(uri: str, table: pa.Table) -> None:
    """Stage a piece as an uncompressed Arrow IPC file, not fsynced.

    Pieces are scratch: the commit reads each once and writes the shard's Parquet file, and a
    crash that loses one also loses the run that would read it. Staged as zstd Parquet with an
    fsync each they made the sink ~10x the time of a bare `write_table` of the same rows; as IPC,
    ~3x (benchmarks/sink_write.py): writing is a copy and reading needs no decoding.
    """
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    storage.write_bytes(uri, sink.getvalue(), durable=False)


def read_piece(uri: str) -> pa.Table:
    """A staged piece; on a local disk memory-mapped, so its bytes are copied once, into the shard."""
    if storage.is_local(uri):
        return pa.ipc.open_file(pa.memory_map(storage.filesystem(uri)[1])).read_all()
    return pa.ipc.open_file(pa.py_buffer(storage.read_bytes(uri))).read_all()


def one_array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array; `combine_chunks` would copy even a single chunk (all the images)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def where(table: pa.Table, mask: pa.Array) -> pa.Table:
    """`table.filter(mask)`, without copying the images when every row passes (the usual case)."""
    return table if pc.all(mask).as_py() is not False else table.filter(mask)


def reject_rows(rejected: pa.Table) -> pa.Table:
    schema = load_schema().rejects_arrow
    table = pa.table(
        {
            "key": rejected.column("key"),
            "url": rejected.column("url"),
            "source": pa.array([public_uri(u) for u in rejected.column("source").to_pylist()], pa.string()),
            "shard": rejected.column("shard"),
            "stage": rejected.column("reject_stage"),
            "reason": rejected.column("reject_reason"),
            "detail": pa.array([redact_text(d) for d in rejected.column("reject_detail").to_pylist()], pa.string()),
        }
    )
    return conform(table, schema)
