"""Shard commit: merge a shard's staged pieces into its final files, then write the manifest.

Exactly-once rests on three rules: final files are named after the input shard (a rerun
overwrites, never adds); every file is written whole before the manifest; the manifest, written
last, is the commit marker that resume and validation trust. Pieces are merged by key, first
piece wins, so a row staged twice by a retried task is written once. A shard reads only pieces
its own run staged (`_staging/RUN/SHARD/`), and a piece reported after its shard committed is
dropped (`route_piece`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from finecap import storage
from finecap.dataset.layout import committed_manifests, data_uri, manifest_uri, rejects_uri  # noqa: F401 (re-exported)
from finecap.schema import load_schema
from finecap.stages.write import ADHOC_RUN, STAGING, read_piece, staging_dir, where

log = logging.getLogger(__name__)


class CommitError(RuntimeError):
    """A shard's pieces do not add up; nothing was committed for it."""


@dataclass
class ShardProgress:
    """What the driver has heard about one shard so far."""

    shard_id: str
    rows_in: int
    run_id: str = ADHOC_RUN  # the staging id of the run that owns this shard's pieces
    keys: set = field(default_factory=set)
    pieces: list = field(default_factory=list)  # piece rows (dicts) in arrival order
    seconds: Counter = field(default_factory=Counter)

    def add(self, piece: dict) -> None:
        ours = f"{STAGING}/{self.run_id}/{self.shard_id}/"
        if not all(ours in piece[name].replace("\\", "/") for name in ("data_file", "rejects_file")):
            log.warning("%s: ignoring a piece staged outside this run's folder: %s", self.shard_id, piece["data_file"])
            return
        new_keys = set(piece["keys"]) - self.keys
        if not new_keys:
            return  # a duplicate report of rows already staged: ignore the whole piece
        self.keys |= new_keys
        self.pieces.append(piece)
        self.seconds.update(json.loads(piece["stage_seconds"]))

    @property
    def complete(self) -> bool:
        return len(self.keys) >= self.rows_in


def route_piece(progress: dict[str, ShardProgress], piece: dict) -> ShardProgress | None:
    """Add a reported piece to its shard; return the shard (removed from `progress`) once complete.

    A piece of a shard not in `progress` is ignored: its shard already committed (a retried task
    reported rows again after the first report completed it) or this run never planned it.
    """
    shard = progress.get(piece["shard"])
    if shard is None:
        return None
    shard.add(piece)
    if not shard.complete:
        return None
    del progress[shard.shard_id]
    return shard





def commit_shard(output: str, progress: ShardProgress, run_facts: dict, compression: str | None) -> dict:
    """Write data, rejects, then the manifest for one complete shard; return the manifest."""
    schema = load_schema()
    data, rejects = _merge(progress)
    if data.num_rows + rejects.num_rows != progress.rows_in:
        raise CommitError(
            f"{progress.shard_id}: {progress.rows_in} rows in but {data.num_rows} written + "
            f"{rejects.num_rows} rejected"
        )
    data = data.cast(schema.arrow) if data.num_rows else schema.arrow.empty_table()
    rejects = rejects.cast(schema.rejects_arrow) if rejects.num_rows else schema.rejects_arrow.empty_table()
    _write_parquet(data_uri(output, progress.shard_id), data, compression)
    _write_parquet(rejects_uri(output, progress.shard_id), rejects, compression)
    reasons = Counter(
        f"{s}/{r}"
        for s, r in zip(rejects.column("stage").to_pylist(), rejects.column("reason").to_pylist(), strict=True)
    )
    manifest = {
        "shard": progress.shard_id,
        "rows_in": progress.rows_in,
        "rows_written": data.num_rows,
        "rows_rejected": rejects.num_rows,
        "rejects_by_reason": dict(sorted(reasons.items())),
        "files": {
            "data": f"data/{progress.shard_id}.parquet",
            "rejects": f"rejects/{progress.shard_id}.parquet",
        },
        "stage_seconds": {k: round(v, 4) for k, v in sorted(progress.seconds.items())},
        "stage_rows_per_s": {
            k: round(progress.rows_in / v, 3) for k, v in sorted(progress.seconds.items()) if v > 0
        },
        "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **run_facts,
    }
    storage.write_bytes(manifest_uri(output, progress.shard_id), json.dumps(manifest, indent=2).encode())
    storage.remove(staging_dir(output, progress.shard_id, progress.run_id), recursive=True)
    return manifest


def _merge(progress: ShardProgress) -> tuple[pa.Table, pa.Table]:
    """Concatenate the reported pieces, keeping each key's first occurrence, sorted by key."""
    claimed: set[str] = set()
    data_parts, reject_parts = [], []
    for piece in progress.pieces:
        for uri, parts in ((piece["data_file"], data_parts), (piece["rejects_file"], reject_parts)):
            table = read_piece(uri)
            keys = table.column("key").to_pylist()
            keep = pa.array([k not in claimed for k in keys], pa.bool_())
            parts.append(where(table, keep))
        claimed.update(piece["keys"])
    return _sorted(data_parts), _sorted(reject_parts)


def _sorted(parts: list[pa.Table]) -> pa.Table:
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return pa.table({"key": pa.array([], pa.string())})
    table = pa.concat_tables(parts)
    order = pc.sort_indices(table, [("key", "ascending")])
    if pc.all(pc.equal(order, pa.array(range(table.num_rows), order.type))).as_py():
        return table  # already in key order (batches arrived in order): no copy of the images
    return table.take(order)


def _write_parquet(uri: str, table: pa.Table, compression: str | None) -> None:
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression=compression)
    storage.write_bytes(uri, buffer.getvalue())  # an Arrow buffer: no copy of the file's bytes
