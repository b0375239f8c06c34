"""The finecap/v1 record, loaded from finecap/schemas/*.json (the single source of truth).

The schemas are package data, read through importlib.resources, so an installed (non-editable)
finecap finds them wherever it lives.

Builds the Arrow schema of data and rejects shards, the Hugging Face `datasets` features
(stored in the Parquet schema metadata under `huggingface`, which is what makes `datasets`
decode the image column to PIL), and validates tables against them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = "v3"
SCHEMA_DIR = files("finecap") / "schemas"

_PRIMITIVES = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "binary": pa.binary(),
}
IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])


def _arrow_type(spec: Any) -> pa.DataType:
    if isinstance(spec, str):
        if spec == "image":
            return IMAGE_TYPE
        if spec not in _PRIMITIVES:
            raise ValueError(f"schema: unknown type {spec!r}")
        return _PRIMITIVES[spec]
    if "list" in spec:
        return pa.list_(_arrow_type(spec["list"]))
    if "struct" in spec:
        return pa.struct([_arrow_field(f) for f in spec["struct"]])
    raise ValueError(f"schema: cannot read type {spec!r}")


def _arrow_field(field: dict) -> pa.Field:
    # Arrow fields stay nullable: `datasets` only honours the features metadata (PIL images) for
    # fields equal to its own, which are always nullable. "nullable": false is enforced by
    # validate_table instead.
    return pa.field(field["name"], _arrow_type(field["type"]))


def _hf_feature(spec: Any):
    import datasets

    if isinstance(spec, str):
        return datasets.Image() if spec == "image" else datasets.Value(spec)
    if "list" in spec:
        return datasets.List(_hf_feature(spec["list"]))
    return {f["name"]: _hf_feature(f["type"]) for f in spec["struct"]}


@dataclass(frozen=True)
class FinecapSchema:
    """A loaded schema version: its JSON, Arrow schemas and HF features."""

    version: str
    spec: dict

    @property
    def arrow(self) -> pa.Schema:
        """Data rows, with the `huggingface` metadata so `datasets` yields PIL images."""
        return _data_arrow(self.version)

    @property
    def rejects_arrow(self) -> pa.Schema:
        return pa.schema([_arrow_field(f) for f in self.spec["rejects"]])

    def required(self, rejects: bool = False) -> set[str]:
        """Top-level columns that must have no nulls."""
        fields = self.spec["rejects"] if rejects else self.spec["fields"]
        return {f["name"] for f in fields if f.get("nullable", True) is False}

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.spec["fields"]]

    def features(self):
        """`datasets.Features` of a data row."""
        import datasets

        return datasets.Features({f["name"]: _hf_feature(f["type"]) for f in self.spec["fields"]})


@cache
def load_schema(version: str = SCHEMA_VERSION) -> FinecapSchema:
    path = SCHEMA_DIR / f"finecap-{version}.json"
    if not path.is_file():
        raise ValueError(f"unknown schema version {version!r} (no {path})")
    spec = json.loads(path.read_text())
    return FinecapSchema(version=spec["version"], spec=spec)


@cache
def _data_arrow(version: str) -> pa.Schema:
    schema = load_schema(version)
    plain = pa.schema([_arrow_field(f) for f in schema.spec["fields"]])
    hf_meta = {"info": {"features": schema.features().to_dict()}}
    return plain.with_metadata({b"huggingface": json.dumps(hf_meta).encode()})


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and order the schema's columns and cast to its types (missing columns become null)."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def validate_table(table: pa.Table, schema: pa.Schema, required: set[str] = frozenset()) -> list[str]:
    """Problems that make `table` not a valid instance of `schema` (empty when valid)."""
    problems = []
    for field in schema:
        if field.name not in table.column_names:
            problems.append(f"missing column {field.name!r}")
            continue
        column = table.column(field.name)
        if not column.type.equals(field.type):
            problems.append(f"column {field.name!r} has type {column.type}, expected {field.type}")
        elif field.name in required and column.null_count:
            problems.append(f"column {field.name!r} has {column.null_count} nulls but is required")
    extra = set(table.column_names) - set(schema.names)
    if extra:
        problems.append(f"unexpected columns {sorted(extra)}")
    return problems
