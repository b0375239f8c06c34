"""Shared planning for table-like inputs: list the files, then cut their rows into shards.

A shard is a list of segments (file, first row, end row), so a plan stays small however many
rows a file holds, and readers open only the files their shard touches. Files are taken in
sorted order, so the same input and shard size always give the same shards and keys.
"""

from __future__ import annotations

import posixpath

import fsspec

from finecap.sources.base import ShardSpec, shard_name
from finecap.typed_config import ConfigError


def list_inputs(uri: str | None, suffixes: tuple[str, ...], what: str) -> list[tuple[str, str]]:
    """(openable URI, name relative to the input) of every file under a file, folder or glob."""
    if not uri:
        raise ConfigError("source.uri: no input given (set it in the YAML or pass --input)")
    fs, root = fsspec.core.url_to_fs(uri)
    if any(ch in root for ch in "*?["):
        paths, base = fs.glob(root), root.split("*")[0].rsplit("/", 1)[0]
    elif fs.isdir(root):
        paths, base = fs.find(root), root
    elif fs.isfile(root):  # named explicitly: taken whatever its suffix
        paths, base, suffixes = [root], posixpath.dirname(root), ("",)
    else:
        raise ConfigError(f"source.uri: {uri!r} is not a file, folder or glob that exists")
    paths = sorted(p for p in paths if p.lower().endswith(suffixes))
    if not paths:
        raise ConfigError(f"source.uri: no {what} ({', '.join(suffixes)}) under {uri!r}")
    protocol = fs.protocol[0] if isinstance(fs.protocol, (list, tuple)) else fs.protocol
    return [(p if protocol == "file" else f"{protocol}://{p}", posixpath.relpath(p, base)) for p in paths]


def plan_segments(files: list[tuple[str, str, int]], shard_size: int, limit: int | None) -> list[ShardSpec]:
    """Cut the rows of `files` [(uri, name, rows)], in order, into shards of `shard_size` rows."""
    specs: list[ShardSpec] = []
    items: list[dict] = []
    filled = total = 0
    for uri, name, rows in files:
        start = 0
        while start < rows and (limit is None or total < limit):
            take = min(rows - start, shard_size - filled)
            if limit is not None:
                take = min(take, limit - total)
            items.append({"path": uri, "name": name, "start": start, "stop": start + take})
            start, filled, total = start + take, filled + take, total + take
            if filled == shard_size:
                specs.append(ShardSpec(shard_name(len(specs)), filled, items))
                items, filled = [], 0
    if filled:
        specs.append(ShardSpec(shard_name(len(specs)), filled, items))
    return specs
