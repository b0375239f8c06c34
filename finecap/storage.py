"""fsspec helpers: one place that knows local paths and `s3://`-style URIs apart.

Shards are committed by writing whole files and the manifest last; on local disks a file is
written beside its final name and renamed (atomic), on object stores a single PUT is already
all-or-nothing.
"""

from __future__ import annotations

import os
import posixpath
import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the path inside it."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def is_local(uri: str) -> bool:
    return isinstance(filesystem(uri)[0], LocalFileSystem)


def join(uri: str, *parts: str) -> str:
    if "://" in uri:
        return posixpath.join(uri.rstrip("/"), *parts)
    return os.path.join(uri, *parts)


def write_bytes(uri: str, data, durable: bool = True) -> None:
    """Write a whole file (bytes or any bytes-like object) so no reader ever sees it half-written.

    `durable=False` skips the fsync, for scratch files only the same run reads back (staged
    pieces): a crash that loses them also loses the run that would read them.
    """
    fs, path = filesystem(uri)
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, bytes(data))  # bytes-like (an Arrow buffer) to bytes; no copy for bytes


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    return fs.cat_file(path)


def _fresh(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """`filesystem(uri)` with any cached listing of the path (and its parents) dropped.

    s3fs answers exists/ls from listings it made earlier in the process; other processes (Ray
    workers, other runs) write the same prefixes, so commit and resume decisions must ask the store.
    """
    fs, path = filesystem(uri)
    fs.invalidate_cache(path)
    return fs, path


def exists(uri: str) -> bool:
    fs, path = _fresh(uri)
    return fs.exists(path)


def list_files(uri: str, suffix: str = "") -> list[str]:
    """Full URIs of the files directly under `uri` ending in `suffix`, sorted; [] if it is absent."""
    fs, path = _fresh(uri)
    if not fs.exists(path):
        return []
    protocol = fs.protocol[0] if isinstance(fs.protocol, (list, tuple)) else fs.protocol
    entries = fs.ls(path, detail=True)  # object stores also list "directories" (common prefixes)
    names = sorted(e["name"] for e in entries if e["type"] == "file" and e["name"].endswith(suffix))
    return [_unstrip(protocol, p, uri) for p in names]


def remove(uri: str, recursive: bool = False) -> None:
    fs, path = _fresh(uri)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


def _unstrip(protocol: str, path: str, like: str) -> str:
    if "://" in like and "://" not in path:
        return f"{protocol}://{path}"
    return path
