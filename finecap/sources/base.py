"""What every input reader provides: a deterministic shard plan and a reader for one shard."""

from __future__ import annotations

from abc import ABC, abstractmethod
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
