"""write: turn finished rows into finecap rows and rejects, written per batch.

A batch can hold rows of several shards and a shard's rows can arrive in several batches. A shard
whose rows all arrive in one batch (its rows carry `_shard_rows`, the shard's size, and the batch
holds that many of its keys: the usual case when shards are smaller than the last stage's batch)
is written here as its final Parquet files, under fresh tagged names (finecap/dataset/writer.py),
and reported as a `final` piece: the driver checks the counts and writes the manifest, so every
byte is written once. Any other shard's rows are staged: each (batch, shard) piece goes to a
uniquely named Arrow IPC file, and the driver merges a shard's pieces into its final files once
the keys of all its input rows have arrived (runtime/commit.py).

Every piece is reported as one small row: which shard, which files, which keys. A retried task
writes its pieces again under new names; the driver commits the first complete report only, so
nothing is doubled: a second final piece's files are orphans (`writer.remove_orphans`), a second
staged piece is never read. Each run stages under its own folder (`_staging/RUN/SHARD/`, RUN the
id of its output lock), so a run never reads or deletes another's.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from finecap import __version__, storage
from finecap.config import PipelineConfig
from finecap.dataset import writer
from finecap.redact import public_uri, redact_text
from finecap.schema import conform, load_schema
from finecap.stages.base import COUNTS_PREFIX, ensure_reject_columns

PIECE_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.string()),
        pa.field("data_file", pa.string()),
        pa.field("rejects_file", pa.string()),
        pa.field("keys", pa.list_(pa.string())),
        pa.field("rows_written", pa.int64()),
        pa.field("rows_rejected", pa.int64()),
        pa.field("stage_seconds", pa.string()),  # JSON {stage: seconds summed over the piece's rows}
        pa.field("final", pa.bool_()),  # the files are the shard's final files (the whole shard)
        pa.field("rejects_by_reason", pa.string()),  # JSON {"stage/reason": rows}
        pa.field("run", pa.string()),  # the staging id of the run that wrote the piece
        # JSON {NAME: {key: {reason: n}}} from the written rows' `_counts_NAME` columns: per key,
        # so a merge counts each row once, as it writes each row once (runtime/commit.py)
        pa.field("counts", pa.string()),
    ]
)
# Working column the read step adds: the number of rows of the row's input shard. A batch holding
# that many keys of a shard holds all of it. Without it every shard is staged.
SHARD_ROWS = "_shard_rows"


STAGING = "_staging"
# The staging id of pieces written outside a locked build (tests, benchmarks); a build stages
# under its lock's owner id, so a run only ever reads and deletes its own pieces.
ADHOC_RUN = "adhoc"


def run_staging_dir(output_uri: str, run_id: str) -> str:
    return storage.join(output_uri, STAGING, run_id)


def staging_dir(output_uri: str, shard: str, run_id: str = ADHOC_RUN) -> str:
    return storage.join(run_staging_dir(output_uri, run_id), shard)


class PieceWriter:
    """Writes one batch's rows: a whole shard as its final files, any other piece under
    `_staging/RUN/SHARD/`; a plain callable (Ray runs it as a task)."""

    def __init__(self, config: PipelineConfig, config_hash: str, run_id: str = ADHOC_RUN,
                 fingerprints: dict[str, str] | None = None, version: str | None = None):
        self.output = config.output.uri
        self.run_id = run_id
        self.compression = None if config.output.compression == "none" else config.output.compression
        self.schema = load_schema()
        self.provenance = {
            "finecap_version": __version__,
            "schema_version": self.schema.version,
            "config_hash": config_hash,
            "fingerprints": [{"stage": s, "fingerprint": f} for s, f in (fingerprints or {}).items()],
            "version": version,
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
        data, rejects = self.data_rows(kept, shard), reject_rows(rejected)
        keys = rows.column("key").to_pylist()
        final = whole_shard(rows, keys)
        if final:
            files = writer.tagged_files(shard)
            writer.write_files(self.output, files, data, rejects, self.compression)
            data_file, rejects_file = (writer.file_uri(self.output, files[kind]) for kind in writer.KINDS)
        else:
            piece = uuid.uuid4().hex
            base = staging_dir(self.output, shard, self.run_id)
            data_file = storage.join(base, f"{piece}.data.arrow")
            rejects_file = storage.join(base, f"{piece}.rejects.arrow")
            write_piece(data_file, data)
            write_piece(rejects_file, rejects)
        seconds = Counter()
        for name in rows.column_names:
            if name.startswith("_seconds_"):
                seconds[name.removeprefix("_seconds_")] += float(pc.sum(rows.column(name)).as_py() or 0.0)
        counts = writer.shard_counts(data, rejects)
        return {
            "shard": shard,
            "data_file": data_file,
            "rejects_file": rejects_file,
            "keys": keys,
            "rows_written": counts["rows_written"],
            "rows_rejected": counts["rows_rejected"],
            "stage_seconds": json.dumps(seconds),
            "final": final,
            "rejects_by_reason": json.dumps(counts["rejects_by_reason"]),
            "run": self.run_id,
            "counts": json.dumps(row_counts(kept)),
        }

    def data_rows(self, kept: pa.Table, shard: str) -> pa.Table:
        n = kept.num_rows
        image = image_column(kept.column("image_bytes"), kept.column("image_path"))
        provenance = {**self.provenance, "shard": shard}
        columns = {
            "key": kept.column("key"),
            "url": kept.column("url"),
            "source": pa.array([public_uri(u) for u in kept.column("source").to_pylist()], pa.string()),
            "alt_text": kept.column("alt_text"),
            "image": image,
            "captions": no_null_lists(kept, "captions", self.schema.arrow.field("captions").type),
            "regions": no_null_lists(kept, "regions", self.schema.arrow.field("regions").type),
            "provenance": [provenance] * n,
        }
        for name in ("width", "height", "sha256", "phash", "quality", "ocr_document", "signals"):
            # Absent when every row of the batch was rejected before prepare (stages skip
            # empty batches); conform() then gives the empty table its schema.
            if name in kept.column_names:
                columns[name] = kept.column(name)
        table = pa.table({k: columns[k] for k in columns})
        return conform(table, self.schema.arrow)


def row_counts(kept: pa.Table) -> dict[str, dict[str, dict]]:
    """{NAME: {key: {reason: n}}} of the `_counts_NAME` columns (stages/base.py) of written rows;
    NAME is there, maybe empty, whenever a stage that counts ran on some row."""
    names = [name for name in kept.column_names if name.startswith(COUNTS_PREFIX)]
    keys = kept.column("key").to_pylist() if names else []
    return {name.removeprefix(COUNTS_PREFIX): {k: json.loads(v) for k, v in
                                               zip(keys, kept.column(name).to_pylist(), strict=True) if v}
            for name in names}


def whole_shard(rows: pa.Table, keys: list[str]) -> bool:
    """Whether `rows` (one shard's rows of a batch) are all of that shard's rows, once each."""
    if SHARD_ROWS not in rows.column_names or not rows.num_rows:
        return False
    sizes = rows.column(SHARD_ROWS)
    return pc.min_max(sizes).as_py() == {"min": len(keys), "max": len(keys)} and len(set(keys)) == len(keys)


def no_null_lists(table: pa.Table, name: str, type_: pa.DataType) -> pa.ChunkedArray | list:
    """A list column with [] where a row has none (absent, or null for rows of a rebuild that
    never reached the stage), as the schema requires."""
    if name not in table.column_names:
        return [[]] * table.num_rows
    column = table.column(name)
    if not column.null_count:
        return column
    return pc.if_else(pc.is_null(column), pa.scalar([], type_), column.cast(type_))


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


def image_column(image_bytes: pa.ChunkedArray, image_path: pa.ChunkedArray) -> pa.ChunkedArray:
    """The `image` struct {bytes, path}, chunk by chunk when the two columns are chunked alike,
    so the image bytes are never copied."""
    if [len(c) for c in image_bytes.chunks] != [len(c) for c in image_path.chunks] or not image_bytes.num_chunks:
        image_bytes, image_path = (pa.chunked_array([one_array(c)]) for c in (image_bytes, image_path))
    chunks = [pa.StructArray.from_arrays([b, p], names=["bytes", "path"])
              for b, p in zip(image_bytes.chunks, image_path.chunks, strict=True)]
    return pa.chunked_array(chunks)


# A selection kept as zero-copy slices while its runs average at least this many rows; past it,
# the per-chunk overhead outweighs the copy. On 2048 rows of 28 KB images with one row in 20
# dropped (~100 runs), slicing took 0.001 s of CPU and filtering 0.011-0.023 s, plus a second
# copy of the kept images in memory; the Parquet file is written as fast from either.
MIN_RUN_ROWS = 8


def where(table: pa.Table, mask) -> pa.Table:
    """`table.filter(mask)` without copying the rows it keeps: contiguous runs of kept rows become
    zero-copy slices (the table itself when every row passes, the usual case)."""
    keep = pc.fill_null(mask, False).to_numpy(zero_copy_only=False).astype(np.int8)
    if keep.all():
        return table
    edges = np.diff(np.concatenate([[0], keep, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not len(starts):
        return table.slice(0, 0)
    if int(keep.sum()) < MIN_RUN_ROWS * len(starts):
        return table.filter(mask)
    return pa.concat_tables([table.slice(int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)])


def reject_rows(rejected: pa.Table) -> pa.Table:
    schema, n = load_schema().rejects_arrow, rejected.num_rows
    table = pa.table(
        {
            "key": rejected.column("key"),
            "url": rejected.column("url"),
            "source": pa.array([public_uri(u) for u in rejected.column("source").to_pylist()], pa.string()),
            "alt_text": rejected.column("alt_text") if "alt_text" in rejected.column_names else pa.nulls(n, pa.string()),
            "shard": rejected.column("shard"),
            "stage": rejected.column("reject_stage"),
            "reason": rejected.column("reject_reason"),
            "detail": pa.array([redact_text(d) for d in rejected.column("reject_detail").to_pylist()], pa.string()),
        }
    )
    return conform(table, schema)
