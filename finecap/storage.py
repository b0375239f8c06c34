"""fsspec helpers: one place that knows local paths and `s3://`-style URIs apart.

Shards are committed by writing whole files and the manifest last; on local disks a file is
written beside its final name and renamed (atomic), on object stores a single PUT is already
all-or-nothing.

The conditional primitives at the end (create_exclusive, read_versioned, replace_if, remove_if)
are what the output lock (runtime/lock.py) is built on.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import posixpath
import time
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


def write_with(uri: str, write, durable: bool = True) -> None:
    """Write a whole file by calling `write(target)`; the guarantees of write_bytes.

    `target` is what pyarrow's writers take: locally the path of a temp file beside the final
    name (renamed into place once written and fsynced), elsewhere an in-memory binary file sent
    in one PUT. Locally the file never passes through memory: a 58 MB Parquet file written to a
    buffer first, then to disk, took ~1.25x the CPU of pyarrow writing the path itself.
    """
    fs, path = filesystem(uri)
    if not isinstance(fs, LocalFileSystem):
        buffer = io.BytesIO()
        write(buffer)
        write_bytes(uri, buffer.getbuffer(), durable)
        return
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        write(tmp)
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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


def list_names(uri: str) -> list[str]:
    """Names of the entries (files and folders) directly under `uri`, sorted; [] if it is absent."""
    fs, path = _fresh(uri)
    if not fs.exists(path) or not fs.isdir(path):
        return []
    return sorted(posixpath.basename(e.rstrip("/")) for e in fs.ls(path, detail=False))


def remove(uri: str, recursive: bool = False) -> None:
    fs, path = _fresh(uri)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


def _unstrip(protocol: str, path: str, like: str) -> str:
    if "://" in like and "://" not in path:
        return f"{protocol}://{path}"
    return path


# --- conditional writes: compare-and-swap on one small file ---
#
# Local disks: create is a hard link of a fully written temp file (atomic, fails if the name
# exists); replace and remove re-check the file's content hash while holding flock() on the
# folder, which the kernel drops when the holder dies (no stale guard to clean up).
# S3 (s3fs): conditional PUT, `If-None-Match: *` to create and `If-Match: ETAG` to replace, atomic
# on the store (s3fs 2026.9 and moto 5.2.5 both pass them through). Other fsspec stores: write,
# wait SETTLE_S, read back and compare: a weaker guarantee (two writers inside the settle window can
# both believe they won), documented in runtime/lock.py.
SETTLE_S = 2.0


def _s3(fs) -> bool:
    return "s3" in (fs.protocol if isinstance(fs.protocol, (list, tuple)) else (fs.protocol,))


def create_exclusive(uri: str, data: bytes) -> str | None:
    """Write `uri` only if it does not exist; its version token if this call created it, else None."""
    fs, path = _fresh(uri)
    if isinstance(fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # never shows a half-written file, unlike O_EXCL then write
            return hashlib.sha256(data).hexdigest()
        except FileExistsError:
            return None
        finally:
            os.unlink(tmp)
    if _s3(fs):
        try:
            answer = fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return None
        if isinstance(answer, dict) and answer.get("ETag"):
            return answer["ETag"]
        current = read_versioned(uri)
        return current[1] if current and current[0] == data else None
    if fs.exists(path):
        return None
    return hashlib.sha256(data).hexdigest() if _write_and_confirm(fs, path, data) else None


def read_versioned(uri: str) -> tuple[bytes, str] | None:
    """The file's bytes and a token that changes with every write; None if it does not exist."""
    fs, path = _fresh(uri)
    try:
        if _s3(fs):
            etag = fs.info(path)["ETag"]
            return fs.cat_file(path), etag
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    return data, hashlib.sha256(data).hexdigest()


def replace_if(uri: str, data: bytes, token: str) -> str | None:
    """Overwrite `uri` only if it still holds the version `token`; the new token, or None."""
    fs, path = _fresh(uri)
    if isinstance(fs, LocalFileSystem):
        with _folder_locked(path):
            current = read_versioned(path)
            if current is None or current[1] != token:
                return None
            write_bytes(path, data)
        return hashlib.sha256(data).hexdigest()
    if _s3(fs):
        try:
            answer = fs.pipe_file(path, data, IfMatch=token)
        except OSError:
            return None  # 412 precondition failed, 404 gone, 409 a concurrent conditional write won
        if isinstance(answer, dict) and answer.get("ETag"):
            return answer["ETag"]
        current = read_versioned(uri)
        return current[1] if current and current[0] == data else None
    current = read_versioned(uri)
    if current is None or current[1] != token:
        return None
    return hashlib.sha256(data).hexdigest() if _write_and_confirm(fs, path, data) else None


def remove_if(uri: str, token: str) -> bool:
    """Delete `uri` only if it still holds the version `token`.

    On object stores the check and the delete are two requests: another writer can only slip in
    between if it was allowed to replace this version, which the lock rules out while the holder's
    lease is fresh.
    """
    fs, path = _fresh(uri)
    if isinstance(fs, LocalFileSystem):
        with _folder_locked(path):
            current = read_versioned(path)
            if current is None or current[1] != token:
                return False
            os.unlink(path)
            return True
    current = read_versioned(uri)
    if current is None or current[1] != token:
        return False
    fs.rm(path)
    return True


@contextlib.contextmanager
def _folder_locked(path: str):
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _write_and_confirm(fs, path: str, data: bytes) -> bool:
    fs.pipe_file(path, data)
    time.sleep(SETTLE_S)
    fs.invalidate_cache(path)
    try:
        return fs.cat_file(path) == data
    except FileNotFoundError:
        return False
