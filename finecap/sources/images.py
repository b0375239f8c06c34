"""Image folders and globs, local or on any fsspec filesystem.

Keys are the file paths relative to the folder, so they stay stable when the shard size changes.
"""

from __future__ import annotations

import posixpath

import fsspec
import pyarrow as pa

from finecap.sources.base import SOURCE_SCHEMA, ShardSpec, Source, shard_name
from finecap.typed_config import ConfigError


class ImageFolderSource(Source):
    def plan(self) -> list[ShardSpec]:
        cfg = self.config.source
        if not cfg.uri:
            raise ConfigError("source.uri: no input given (set it in the YAML or pass --input)")
        fs, root = fsspec.core.url_to_fs(cfg.uri)
        extensions = tuple(e.lower() for e in cfg.extensions)
        if any(ch in root for ch in "*?["):
            paths = fs.glob(root)
            base = root.split("*")[0].rsplit("/", 1)[0]
        elif fs.isdir(root):
            paths = fs.find(root)
            base = root
        else:
            raise ConfigError(f"source.uri: {cfg.uri!r} is neither a folder nor a glob that exists")
        paths = sorted(p for p in paths if p.lower().endswith(extensions))
        if cfg.limit:
            paths = paths[: cfg.limit]
        if not paths:
            raise ConfigError(f"source.uri: no images ({', '.join(extensions)}) under {cfg.uri!r}")
        protocol = fs.protocol[0] if isinstance(fs.protocol, (list, tuple)) else fs.protocol
        items = [
            {"key": posixpath.relpath(p, base), "path": p if protocol == "file" else f"{protocol}://{p}"}
            for p in paths
        ]
        size = cfg.shard_size
        return [
            ShardSpec(shard_name(i), len(items[s : s + size]), items[s : s + size])
            for i, s in enumerate(range(0, len(items), size))
        ]

    def read(self, spec: ShardSpec) -> pa.Table:
        rows = {name: [] for name in SOURCE_SCHEMA.names}
        for item in spec.items:
            rows["key"].append(item["key"])
            rows["shard"].append(spec.shard_id)
            rows["url"].append(item["path"] if "://" in item["path"] else f"file://{item['path']}")
            rows["source"].append(self.config.source.uri)
            rows["alt_text"].append(None)
            rows["image_path"].append(posixpath.basename(item["path"]))
            data, reason, detail = _read(item["path"], self.config.prepare.max_bytes)
            rows["image_bytes"].append(data)
            rows["reject_stage"].append("read" if reason else None)
            rows["reject_reason"].append(reason)
            rows["reject_detail"].append(detail)
        return pa.table(rows, schema=SOURCE_SCHEMA)


def _read(path: str, max_bytes: int) -> tuple[bytes | None, str | None, str | None]:
    """(bytes, None, None), or (None, reason, detail) for a file that cannot be used."""
    try:
        with fsspec.open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        return None, "unreadable", f"{type(exc).__name__}: {exc}"
    if len(data) > max_bytes:
        return None, "too_many_bytes", f"file is over prepare.max_bytes={max_bytes}"
    return data, None, None
