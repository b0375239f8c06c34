"""The output folder of an earlier img2dataset run, reused without fetching again.

Parquet output (`NNNNN.parquet` with the image bytes in a `jpg`/`png`/`webp` column) holds every
input row: rows img2dataset could not download become rejects with stage `fetch` and the reason
from its `status` / `error_message`. Webdataset output (`NNNNN.tar`) holds only the downloaded
samples (`KEY.jpg`, `KEY.txt`, `KEY.json`); those are the rows. Keys are img2dataset's own
(unique within one crawl), so a rebuild of the same folder gives the same keys. A key that
repeats inside a shard anyway (a tar written twice into, a merged crawl) is kept once; the
repeats become `read/duplicate_key` rejects keyed `KEY#N` (sources/base.py).
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from finecap.fetch.reasons import classify
from finecap.sources.base import SOURCE_SCHEMA, ShardSpec, Source, reject_repeated_keys
from finecap.sources.segments import list_inputs, plan_segments
from finecap.sources.tables import parquet_range
from finecap.typed_config import ConfigError

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


class Img2DatasetSource(Source):
    def plan(self) -> list[ShardSpec]:
        cfg = self.config.source
        found = list_inputs(cfg.uri, (".tar", ".parquet"), "img2dataset shards")
        tars = [(uri, name) for uri, name in found if uri.endswith(".tar")]
        if tars:
            files = [(uri, name, sum(1 for _ in _tar_samples(uri, read=False))) for uri, name in tars]
        else:
            files = [(uri, name, _parquet_rows(uri, name)) for uri, name in found]
        return plan_segments(files, cfg.shard_size, cfg.limit)

    def read(self, spec: ShardSpec) -> pa.Table:
        rows = {name: [] for name in SOURCE_SCHEMA.names}
        for item in spec.items:
            reader = _tar_rows if item["path"].endswith(".tar") else _parquet_read
            for row in reader(item):
                data = row.get("image_bytes")
                if data is not None and len(data) > self.config.prepare.max_bytes:
                    row.update(image_bytes=None, reject_stage="read", reject_reason="too_many_bytes",
                               reject_detail=f"image is over prepare.max_bytes={self.config.prepare.max_bytes}")
                for name in SOURCE_SCHEMA.names:
                    rows[name].append(row.get(name))
        reject_repeated_keys(rows)
        n = len(rows["key"])
        rows["shard"] = [spec.shard_id] * n
        rows["source"] = [self.config.source.uri] * n
        return pa.table(rows, schema=SOURCE_SCHEMA)


def _image_column(names: list[str]) -> str | None:
    return next((c for c in IMAGE_EXTENSIONS if c in names), None)


def _parquet_rows(uri: str, name: str) -> int:
    with fsspec.open(uri, "rb") as f:
        parquet = pq.ParquetFile(f)
        names = parquet.schema_arrow.names
        if "url" not in names or _image_column(names) is None:
            raise ConfigError(
                f"source.uri: {name} is not an img2dataset parquet shard (needs `url` and a "
                f"jpg/png/webp column; has {', '.join(names[:12])})"
            )
        return parquet.metadata.num_rows


def _parquet_read(item: dict) -> Iterator[dict]:
    with fsspec.open(item["path"], "rb") as f:
        names = pq.ParquetFile(f).schema_arrow.names
    image_col = _image_column(names)
    wanted = [c for c in ("key", "url", "caption", "status", "error_message", image_col) if c in names]
    table = parquet_range(item["path"], wanted, item["start"], item["stop"])
    for offset, record in enumerate(table.to_pylist()):
        key = record.get("key") or f"{item['name']}/{item['start'] + offset:09d}"
        row = {"key": str(key), "url": record.get("url"), "alt_text": record.get("caption")}
        status = record.get("status", "success")
        if status == "success" and record.get(image_col):
            row["image_bytes"] = record[image_col]
            row["image_path"] = f"{key}.{image_col}"
        else:
            reason, detail = classify(status, record.get("error_message"))
            if status == "success":
                reason, detail = "empty", "no image bytes in the img2dataset row"
            row.update(reject_stage="fetch", reject_reason=reason, reject_detail=f"img2dataset: {detail}")
        yield row


def _tar_samples(uri: str, read: bool = True) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for every sample with an image, in tar order (webdataset rules);
    with read=False the values are empty (counting needs only the names)."""
    key, parts = None, {}
    with fsspec.open(uri, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            base = posixpath.basename(member.name)
            if "." not in base:
                continue
            prefix = posixpath.join(posixpath.dirname(member.name), base.split(".", 1)[0])
            ext = base.split(".", 1)[1].lower()
            if prefix != key:
                if key is not None and _has_image(parts):
                    yield key, parts
                key, parts = prefix, {}
            parts[ext] = tar.extractfile(member).read() if read else b""
    if key is not None and _has_image(parts):
        yield key, parts


def _has_image(parts: dict) -> bool:
    return any(ext in parts for ext in IMAGE_EXTENSIONS)


def _tar_rows(item: dict) -> Iterator[dict]:
    for index, (key, parts) in enumerate(_tar_samples(item["path"])):
        if index >= item["stop"]:
            break
        if index < item["start"]:
            continue
        meta = _json(parts.get("json"))
        ext = next(e for e in IMAGE_EXTENSIONS if e in parts)
        caption = parts["txt"].decode("utf-8", errors="replace") if "txt" in parts else meta.get("caption")
        yield {
            "key": str(meta.get("key") or key),
            "url": meta.get("url"),
            "alt_text": caption,
            "image_bytes": parts[ext],
            "image_path": f"{posixpath.basename(key)}.{ext}",
        }


def _json(data: bytes | None) -> dict:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
