"""Reading URL-list files the way img2dataset does: parquet, csv, tsv, jsonl, txt (optionally .gz).

Parquet is read by row group, so a shard reads only the part of the file it needs; the text
formats are parsed whole (by pyarrow's C++ readers) and sliced: split long text lists into
several files or convert them to Parquet.
"""

from __future__ import annotations

import io

import fsspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from finecap.typed_config import ConfigError

FORMATS = ("parquet", "csv", "tsv", "jsonl", "txt")
SUFFIXES = tuple(f".{f}" for f in FORMATS) + tuple(f".{f}.gz" for f in FORMATS if f != "parquet")


def file_format(path: str, configured: str) -> str:
    if configured != "auto":
        return configured
    name = path.lower().removesuffix(".gz")
    for fmt in FORMATS:
        if name.endswith(f".{fmt}"):
            return fmt
    raise ConfigError(f"source.format: cannot tell the format of {path!r} from its name; set source.format")


def count_rows(path: str, fmt: str) -> int:
    if fmt == "parquet":
        with fsspec.open(path, "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows
    return _parse_text(path, fmt).num_rows


def column_names(path: str, fmt: str) -> list[str]:
    if fmt == "parquet":
        with fsspec.open(path, "rb") as f:
            return pq.ParquetFile(f).schema_arrow.names
    return _parse_text(path, fmt).column_names


def read_rows(path: str, fmt: str, columns: list[str], start: int, stop: int, optional: tuple = ()) -> pa.Table:
    """Rows [start, stop) of `columns` (which must exist) and of the `optional` columns that do,
    every column as strings."""
    if fmt == "parquet":
        with fsspec.open(path, "rb") as f:
            present = pq.ParquetFile(f).schema_arrow.names
        wanted = columns + [c for c in optional if c in present and c not in columns]
        table = parquet_range(path, wanted, start, stop)
    else:
        table = _parse_text(path, fmt)
        wanted = columns + [c for c in optional if c in table.column_names and c not in columns]
        table = table.select(wanted).slice(start, stop - start)
    return pa.table({name: _as_strings(table.column(name)) for name in wanted})


def parquet_range(path: str, columns: list[str], start: int, stop: int) -> pa.Table:
    with fsspec.open(path, "rb") as f:
        parquet = pq.ParquetFile(f)
        groups, first, offset = [], None, 0
        for i in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(i).num_rows
            if offset + rows > start and offset < stop:
                groups.append(i)
                first = offset if first is None else first
            offset += rows
        if not groups:
            return parquet.schema_arrow.empty_table().select(columns)
        table = parquet.read_row_groups(groups, columns=columns)
    return table.slice(start - first, stop - start)


def _parse_text(path: str, fmt: str) -> pa.Table:
    with fsspec.open(path, "rb", compression="infer") as f:
        data = f.read()
    if fmt == "txt":
        lines = [line.strip() for line in data.decode("utf-8", errors="replace").splitlines()]
        return pa.table({"url": [line for line in lines if line]})
    if fmt == "jsonl":
        return pa_json.read_json(io.BytesIO(data))
    delimiter = "\t" if fmt == "tsv" else ","
    return pa_csv.read_csv(
        io.BytesIO(data),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(strings_can_be_null=True),
    )


def _as_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if pa.types.is_null(column.type):
        return pa.chunked_array([pa.nulls(len(column), pa.string())])
    return column.cast(pa.string())
