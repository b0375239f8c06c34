"""What every input reader provides: a deterministic shard plan and a reader for one shard."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from finecap.config import PipelineConfig

# Columns every source emits; later stages add to them.
SOURCE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("source", pa.string()),
        pa.field("alt_text", pa.string()),
        pa.field("image_bytes", pa.binary()),
        pa.field("image_path", pa.string()),
        # A row the source could not read is already a reject (stage "read").
        pa.field("reject_stage", pa.string()),
        pa.field("reject_reason", pa.string()),
        pa.field("reject_detail", pa.string()),
    ]
)


@dataclass(frozen=True)
class ShardSpec:
    """One unit of work and of commit: the same input and shard size give the same specs."""

    shard_id: str  # e.g. "part-000003": names the output files
    num_rows: int
    items: list = field(default_factory=list)  # source-specific row descriptors

    def to_row(self) -> dict:
        return {"shard_id": self.shard_id, "num_rows": self.num_rows, "items": list(self.items)}


def reject_repeated_keys(rows: dict[str, list]) -> None:
    """Turn every repeat of a key within one shard (columns as lists) into a reject, in place.

    Keys are the unit of accounting: a shard whose keys repeat could never count all its rows in,
    so it would never commit. The first occurrence stays as it is; a later one keeps its url and
    becomes a `read/duplicate_key` reject under the key `KEY#N` (N: which occurrence, 2 for the
    second; bumped past any key the shard already has), so reject keys stay unique too.
    """
    taken = set(rows["key"])
    seen: Counter = Counter()
    for i, key in enumerate(rows["key"]):
        seen[key] += 1
        if seen[key] == 1:
            continue
        n = seen[key]
        while f"{key}#{n}" in taken:
            n += 1
        rows["key"][i] = f"{key}#{n}"
        taken.add(rows["key"][i])
        rows["image_bytes"][i] = None
        rows["reject_stage"][i], rows["reject_reason"][i] = "read", "duplicate_key"
        rows["reject_detail"][i] = f"key {key!r} repeats in this shard (occurrence {seen[key]}); the first is kept"


def shard_name(index: int) -> str:
    return f"part-{index:06d}"


class Source(ABC):
    def __init__(self, config: PipelineConfig):
        self.config = config

    @abstractmethod
    def plan(self) -> list[ShardSpec]:
        """Split the input into shards of `source.shard_size` rows, deterministically."""

    @abstractmethod
    def read(self, spec: ShardSpec) -> pa.Table:
        """The shard's rows with SOURCE_SCHEMA columns; unreadable items become rows without bytes."""
