"""Read committed shards one at a time, only the columns asked for.

Parquet files are opened through fsspec rather than read whole, so pyarrow fetches only the
column chunks it needs: on an object store the statistics never download the image bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from finecap import storage
from finecap.dataset.layout import committed_manifests, data_uri, rejects_uri


def read_columns(uri: str, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file (local path or any fsspec URI), restricted to `columns` when given."""
    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as f:
        return pq.read_table(f, columns=columns)


def iter_shards(
    output: str, columns: list[str] | None, manifests: dict[str, dict] | None = None
) -> Iterator[tuple[str, dict, pa.Table, pa.Table]]:
    """(shard id, manifest, data columns, rejects) for every committed shard, in shard order."""
    manifests = committed_manifests(output) if manifests is None else manifests
    for shard_id in sorted(manifests):
        data = read_columns(data_uri(output, shard_id), columns)
        rejects = read_columns(rejects_uri(output, shard_id))
        yield shard_id, manifests[shard_id], data, rejects
