"""URL lists (img2dataset's input convention): one row per image URL, optional alt text.

Keys are `NAME/ROW` (the list file's path relative to the input and the row's zero-padded
index in it), so they are stable whatever the shard size and unique even when the same URL
appears twice. Rows carry no bytes yet: the fetch stage downloads them.
"""

from __future__ import annotations

import pyarrow as pa

from finecap.sources.base import SOURCE_SCHEMA, ShardSpec, Source
from finecap.sources.segments import list_inputs, plan_segments
from finecap.sources.tables import SUFFIXES, column_names, count_rows, file_format, read_rows
from finecap.typed_config import ConfigError


def row_key(name: str, row: int) -> str:
    return f"{name}/{row:09d}"


class UrlListSource(Source):
    def plan(self) -> list[ShardSpec]:
        cfg = self.config.source
        suffixes = SUFFIXES if cfg.format == "auto" else (f".{cfg.format}", f".{cfg.format}.gz")
        files = []
        for uri, name in list_inputs(cfg.uri, suffixes, "URL lists"):
            fmt = file_format(uri, cfg.format)
            self._check_columns(uri, name, fmt)
            files.append((uri, name, count_rows(uri, fmt)))
        return plan_segments(files, cfg.shard_size, cfg.limit)

    def _check_columns(self, uri: str, name: str, fmt: str) -> None:
        if fmt == "txt":
            return
        names = column_names(uri, fmt)
        if self.config.source.url_col not in names:
            raise ConfigError(
                f"source.url_col: column {self.config.source.url_col!r} is not in {name} "
                f"(its columns: {', '.join(names[:20])})"
            )

    def read(self, spec: ShardSpec) -> pa.Table:
        cfg = self.config.source
        rows = {name: [] for name in SOURCE_SCHEMA.names}
        for item in spec.items:
            fmt = file_format(item["path"], cfg.format)
            url_col = "url" if fmt == "txt" else cfg.url_col
            optional = (cfg.caption_col,) if cfg.caption_col and fmt != "txt" else ()
            table = read_rows(item["path"], fmt, [url_col], item["start"], item["stop"], optional)
            urls = table.column(url_col).to_pylist()
            caption_col = optional[0] if optional and optional[0] in table.column_names else None
            captions = table.column(caption_col).to_pylist() if caption_col else [None] * len(urls)
            for offset, (url, caption) in enumerate(zip(urls, captions, strict=True)):
                rows["key"].append(row_key(item["name"], item["start"] + offset))
                rows["url"].append(url)
                rows["alt_text"].append(caption)
            n = len(urls)
            rows["shard"] += [spec.shard_id] * n
            rows["source"] += [cfg.uri] * n
            for name in ("image_bytes", "image_path", "reject_stage", "reject_reason", "reject_detail"):
                rows[name] += [None] * n
        return pa.table(rows, schema=SOURCE_SCHEMA)
