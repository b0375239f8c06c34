"""The on-disk contract of a FineCap output, for every reader and writer of one."""

from finecap.dataset.reader import (
    CommittedShard,
    committed_shards,
    data_file_uris,
    is_output,
    iter_committed,
    orphan_data_files,
    read_columns,
    read_data,
    read_rejects,
)
from finecap.dataset.writer import ShardWriteError, read_manifest, remove_orphans, write_shard

__all__ = [
    "CommittedShard",
    "committed_shards",
    "data_file_uris",
    "is_output",
    "iter_committed",
    "orphan_data_files",
    "read_columns",
    "read_data",
    "read_rejects",
    "ShardWriteError",
    "read_manifest",
    "remove_orphans",
    "write_shard",
]
