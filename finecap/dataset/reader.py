"""The one way to read the committed shards of a FineCap output.

A shard is committed once its manifest exists, and its manifest's `files` (paths relative to the
output) name the data and rejects files that hold it: a rebuilt shard's new version is written
under a new name, so a file under data/ that no manifest names (a rebuild's leftover, or a shard
still being written) is never read. A manifest without `files` (older outputs) means the files
named after the shard (layout.data_uri / rejects_uri).

Files are opened through fsspec rather than fetched whole, so pyarrow reads only the footer and
the column chunks asked for: on an object store, statistics never download the image bytes.

Columns a file lacks: asking a v1 shard for a column only a later schema version added (say
`ocr_document`) gives a column of nulls of its type in the newest shipped schema version (each
version only adds fields, so the newest knows every column), so a reader of mixed outputs sees
one set of columns; a column no schema knows is an error. Columns the file has are
returned as written (a v1 `provenance` struct stays the v1 struct): validate must see the file
as it is, and a reader that wants one shape casts with schema.conform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache

import pyarrow as pa
import pyarrow.parquet as pq

from finecap import storage
from finecap.dataset import layout
from finecap.schema import SCHEMA_DIR, FinecapSchema, load_schema

# Manifests written before schema versions were recorded hold v1 rows: v1 was the only version.
UNVERSIONED_SCHEMA = "v1"


@dataclass(frozen=True)
class CommittedShard:
    """A committed shard: its manifest and the absolute URIs of the files the manifest names.

    Hashable (the manifest, a dict, stays out of equality), so shards can key dicts and sets.
    """

    shard_id: str
    manifest: dict = field(compare=False)
    data_uri: str
    rejects_uri: str

    @property
    def schema_version(self) -> str:
        return self.manifest.get("schema_version", UNVERSIONED_SCHEMA)


def committed_shards(output: str) -> list[CommittedShard]:
    """Every committed shard under `output`, sorted by shard id."""
    manifests = layout.committed_manifests(output)
    return [_shard(output, shard_id, manifests[shard_id]) for shard_id in sorted(manifests)]


def _shard(output: str, shard_id: str, manifest: dict) -> CommittedShard:
    return CommittedShard(
        shard_id,
        manifest,
        storage.join(output, *relative_file(manifest, "data").split("/")),
        storage.join(output, *relative_file(manifest, "rejects").split("/")),
    )


def relative_file(manifest: dict, kind: str) -> str:
    """The `kind` ("data" or "rejects") file of a manifest's shard, relative to the output."""
    path = (manifest.get("files") or {}).get(kind)
    if path is None:
        return f"{kind}/{manifest['shard']}.parquet"
    if path.startswith("/") or "://" in path or ".." in path.split("/"):
        raise ValueError(f"manifest of shard {manifest['shard']}: files.{kind} {path!r} is not a path inside the output")
    return path


def read_columns(uri: str, columns: list[str] | None = None,
                 fill: pa.Schema | Callable[[], pa.Schema] | None = None) -> pa.Table:
    """One Parquet file (any fsspec URI), restricted to `columns` (in that order) when given.

    A requested column the file lacks becomes nulls of its type in `fill`; one `fill` lacks too
    is an error naming it.
    """
    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as f:
        parquet = pq.ParquetFile(f)
        names = set(parquet.schema_arrow.names)
        table = parquet.read(columns=None if columns is None else [c for c in columns if c in names])
    if columns is None or all(c in names for c in columns):
        return table
    if callable(fill):
        fill = fill()  # only now: the data schema's HF features import `datasets` (seconds)
    known = fill.names if fill is not None else []
    unknown = [c for c in columns if c not in names and c not in known]
    if unknown:
        raise ValueError(f"{uri}: no column {unknown[0]!r} in the file or its schema")
    arrays = [table.column(c) if c in names else pa.nulls(table.num_rows, fill.field(c).type) for c in columns]
    fields = [table.schema.field(c) if c in names else fill.field(c) for c in columns]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=table.schema.metadata))


def read_data(shard: CommittedShard, columns: list[str] | None = None) -> pa.Table:
    """The shard's data rows; see the module doc for columns its schema version lacks."""
    return read_columns(shard.data_uri, columns, lambda: newest_schema().arrow)


def read_rejects(shard: CommittedShard, columns: list[str] | None = None) -> pa.Table:
    """The shard's rejected rows (key, url, source, shard, stage, reason, detail, ...)."""
    return read_columns(shard.rejects_uri, columns, lambda: newest_schema().rejects_arrow)


@cache
def newest_schema() -> FinecapSchema:
    """The highest shipped schema version (schemas/finecap-vN.json): the fill of absent columns."""
    names = [p.name for p in SCHEMA_DIR.iterdir()]  # a Traversable (package data): no glob
    versions = [n[len("finecap-"):-len(".json")] for n in names if n.startswith("finecap-v") and n.endswith(".json")]
    return load_schema(max(versions, key=lambda v: int(v[1:])))


def iter_committed(
    output: str, columns: list[str] | None = None, rejects: bool = False,
    shards: list[CommittedShard] | None = None,
) -> Iterator[tuple]:
    """(shard, data) per committed shard in shard order, (shard, data, rejects) with `rejects`.

    One shard is read at a time, so memory does not grow with the output. `shards` reuses a
    listing the caller already made (committed_shards) instead of listing the manifests again.
    """
    for shard in committed_shards(output) if shards is None else shards:
        data = read_data(shard, columns)
        yield (shard, data, read_rejects(shard)) if rejects else (shard, data)


def data_file_uris(output: str) -> list[str]:
    """The committed data files, in shard order (what a trainer plans its row groups over)."""
    return [shard.data_uri for shard in committed_shards(output)]


def orphan_data_files(output: str, shards: list[CommittedShard] | None = None) -> list[str]:
    """Files directly under OUT/data/ that no manifest names: never read, left by a rebuild
    (the replaced version) or by a shard still being written."""
    shards = committed_shards(output) if shards is None else shards
    named = {relative_file(s.manifest, "data") for s in shards}
    files = storage.list_files(storage.join(output, "data"), ".parquet")
    return [uri for uri in files if f"data/{uri.rsplit('/', 1)[-1]}" not in named]


def is_output(uri: str) -> bool:
    """Whether `uri` holds a FineCap output (a data/ or _manifest/ folder), not a plain folder of
    parquet files. data/ alone counts: the first shard's files are written before its manifest."""
    return bool({"data", "_manifest"} & set(storage.list_names(uri)))
