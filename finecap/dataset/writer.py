"""The one shard writer: how a shard's files reach an output, in which order, under which names.

Used by the build's commit (runtime/commit.py), by the build's write stage when a shard arrives
in one batch (stages/write.py), and by dedup (dedup/shards.py). Its rules:

1. A shard's committed files are whatever its manifest's `files` names, paths relative to the
   output: `{"data": "data/X.parquet", "rejects": "rejects/X.parquet"}`. The manifest
   (`_manifest/X.json`, one atomic write) is the commit marker; nothing else is trusted.
2. Never overwrite a file the current manifest references. A new version of a committed shard (a
   rebuild, a dedup pass) is written under fresh names (`data/X.<tag>.parquet`, the tag unique
   per write), each file whole and fsynced, then the manifest, then the previous version's files
   are deleted. Until the manifest is written the old version is whole and the one readers see;
   a crash anywhere leaves only whole old and whole new files.
3. A shard never committed before is written by the driver under the plain names
   (`data/X.parquet`). Files written by workers (the build's one-batch shards) are always tagged:
   a retried task may write the same shard again, even after the first report committed, and
   must never replace a committed file.
4. Files no manifest names are orphans: left by a crash between the new files and the manifest,
   by a crash between the manifest and deleting the old files, or by a retried task whose report
   came second. Readers never read them (they read manifest-named files only), but a glob of
   `data/*.parquet` would, until `remove_orphans` deletes them; the build calls it holding the
   output lock before it starts, dedup likewise.

Rows are written sorted by key, so a shard's files do not depend on how its rows were batched.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from finecap import storage
from finecap.dataset.layout import committed_manifests, manifest_uri
from finecap.dataset.reader import relative_file

KINDS = ("data", "rejects")
TAG_CHARS = 12  # hex digits of a random tag: 48 bits, and checked against the names in use
PAGE_BYTES = 1 << 20  # pyarrow's default data page size


class ShardWriteError(RuntimeError):
    """A shard's files or counts do not add up; no manifest was written for it."""


def read_manifest(output: str, shard_id: str) -> dict | None:
    """The shard's committed manifest, or None if it was never committed."""
    try:
        return json.loads(storage.read_bytes(manifest_uri(output, shard_id)))
    except FileNotFoundError:
        return None


def file_uri(output: str, relative: str) -> str:
    """The URI of a path the manifest names (relative to the output, '/'-separated)."""
    return storage.join(output, *relative.split("/"))


def plain_files(shard_id: str) -> dict[str, str]:
    return {kind: f"{kind}/{shard_id}.parquet" for kind in KINDS}


def tagged_files(shard_id: str, avoid: dict | None = None) -> dict[str, str]:
    """Fresh names for a new version of the shard, none of them among `avoid`'s values."""
    taken = set((avoid or {}).values())
    while True:
        tag = uuid.uuid4().hex[:TAG_CHARS]
        files = {kind: f"{kind}/{shard_id}.{tag}.parquet" for kind in KINDS}
        if taken.isdisjoint(files.values()):
            return files


def fresh_files(shard_id: str, previous: dict | None) -> dict[str, str]:
    """Names for the driver's next version: plain for a first commit, else tagged (rules 2, 3)."""
    if previous is None:
        return plain_files(shard_id)
    return tagged_files(shard_id, {kind: relative_file(previous, kind) for kind in KINDS})


def is_shard_file(shard_id: str, kind: str, relative: str) -> bool:
    """Whether `relative` is a name this writer gives the shard's `kind` file."""
    pattern = rf"{kind}/{re.escape(shard_id)}(\.[0-9a-f]{{{TAG_CHARS}}})?\.parquet"
    return re.fullmatch(pattern, relative) is not None


def sorted_by_key(table: pa.Table) -> pa.Table:
    """The table in key order; the table itself (no copy of the images) when already sorted."""
    n = table.num_rows
    if n < 2:
        return table
    keys = table.column("key")
    if pc.all(pc.greater_equal(keys.slice(1), keys.slice(0, n - 1))).as_py():
        return table
    return table.take(pc.sort_indices(table, [("key", "ascending")]))


def shard_counts(data: pa.Table, rejects: pa.Table) -> dict:
    """The manifest's counts of a shard's files: rows written, rows rejected, rejects by reason."""
    if rejects.num_rows:
        pairs = zip(rejects.column("stage").to_pylist(), rejects.column("reason").to_pylist(), strict=True)
        reasons = Counter(f"{stage}/{reason}" for stage, reason in pairs)
    else:
        reasons = Counter()
    return {"rows_written": data.num_rows, "rows_rejected": rejects.num_rows,
            "rejects_by_reason": dict(sorted(reasons.items()))}


def check_accounting(manifest: dict) -> None:
    """Raise ShardWriteError unless rows in = rows written + rows rejected (invariant 1)."""
    written, rejected = manifest["rows_written"], manifest["rows_rejected"]
    if written + rejected != manifest["rows_in"]:
        raise ShardWriteError(f"{manifest['shard']}: {manifest['rows_in']} rows in but {written} written + "
                              f"{rejected} rejected")


def parquet_options(table: pa.Table, compression: str | None) -> dict:
    """`pq.write_table` options for a shard file: default row groups, and rows handed to the
    column writers in batches of about a page (PAGE_BYTES).

    pyarrow's default of 1024 rows a batch is 28 MB of images (~28 KB each): each batch was
    copied, checked and compressed as one page that no longer fit in the CPU caches, and a
    reader had to decompress all of it for one image. Batches of about a page wrote the same
    2048 rows of 28 KB random bytes (zstd) in 0.047 s of CPU instead of 0.087 s.
    """
    row_bytes = table.nbytes // max(table.num_rows, 1)
    return {"compression": compression, "write_batch_size": max(1, min(1024, PAGE_BYTES // max(row_bytes, 1)))}


def write_parquet(uri: str, table: pa.Table, compression: str | None) -> None:
    """One whole, fsynced Parquet file, streamed into place (storage.write_with)."""
    options = parquet_options(table, compression)
    storage.write_with(uri, lambda target: pq.write_table(table, target, **options))


def write_files(output: str, files: dict[str, str], data: pa.Table, rejects: pa.Table,
                compression: str | None) -> None:
    """Write a version's data and rejects files (sorted by key), each whole, before any manifest."""
    for kind, table in (("data", data), ("rejects", rejects)):
        write_parquet(file_uri(output, files[kind]), sorted_by_key(table), compression)


def check_files(output: str, manifest: dict) -> None:
    """Raise ShardWriteError unless the files the manifest names exist with its row counts.

    Reads only the files' footers: what the driver checks of files a worker wrote.
    """
    shard = manifest["shard"]
    for kind, count in (("data", "rows_written"), ("rejects", "rows_rejected")):
        uri = file_uri(output, manifest["files"][kind])
        fs, path = storage.filesystem(uri)
        try:
            with fs.open(path, "rb") as f:
                rows = pq.ParquetFile(f).metadata.num_rows
        except FileNotFoundError:
            raise ShardWriteError(f"{shard}: {manifest['files'][kind]} is missing") from None
        if rows != manifest[count]:
            raise ShardWriteError(f"{shard}: {manifest['files'][kind]} holds {rows} rows, the report said "
                                  f"{manifest[count]}")


def commit_files(output: str, manifest: dict, previous: dict | None) -> dict:
    """Write the manifest of files already written whole, then delete the previous version's files.

    `manifest` names its files (`files`) and carries its counts; the counts must add up to
    `rows_in`. Returns the manifest written.
    """
    shard = manifest["shard"]
    check_accounting(manifest)
    new = set(manifest["files"].values())
    if previous is not None and new & {relative_file(previous, kind) for kind in KINDS}:
        raise ShardWriteError(f"{shard}: a new version may not reuse the committed files {sorted(new)}")
    storage.write_bytes(manifest_uri(output, shard), json.dumps(manifest, indent=2).encode())
    if previous is not None:
        delete_files(output, [relative_file(previous, kind) for kind in KINDS])
    return manifest


def write_shard(output: str, shard_id: str, data: pa.Table, rejects: pa.Table, manifest: dict,
                compression: str | None, previous: dict | None) -> dict:
    """Commit a new version of one shard: files under fresh names, the manifest, then old files out.

    `manifest` holds everything but the files and counts, which this fills in from the tables;
    `previous` is the shard's current manifest (read_manifest), None if never committed.
    Returns the manifest written.
    """
    files = fresh_files(shard_id, previous)
    manifest = {**manifest, "shard": shard_id, **shard_counts(data, rejects), "files": files}
    check_accounting(manifest)  # before any file: a shard that does not add up leaves nothing
    write_files(output, files, data, rejects, compression)
    return commit_files(output, manifest, previous)


def delete_files(output: str, relatives: list[str]) -> None:
    for relative in relatives:
        storage.remove(file_uri(output, relative))


def remove_orphans(output: str, manifests: dict[str, dict] | None = None) -> list[str]:
    """Delete the shard files under data/ and rejects/ that no manifest names; return their URIs.

    Call it holding the output lock (no commit in flight), on an output known to be FineCap's
    (it deletes every unnamed `*.parquet` there). Only names this writer could have made are
    touched (`*.parquet`, and the temp files of a killed local write); anything else is left
    alone. `manifests` reuses a listing the caller made under the same lock.
    """
    manifests = committed_manifests(output) if manifests is None else manifests
    named = {relative_file(m, kind) for m in manifests.values() for kind in KINDS}
    removed = []
    for kind in KINDS:
        for uri in storage.list_files(storage.join(output, kind)):
            name = uri.replace("\\", "/").rsplit("/", 1)[-1]
            ours = name.endswith(".parquet") or ".parquet.tmp-" in name
            if ours and f"{kind}/{name}" not in named:
                storage.remove(uri)
                removed.append(uri)
    return removed
