"""Reading a balanced selection (written by finecap/balance.py): which regions it keeps.

Two readers use it: the regions stage of a balanced build captions only the selected regions,
and the trainer's stage III trains only on them when the output has a selection. A region of an
origin the selection does not balance (OCR, unless balanced with `--origin ocr`) is always kept.
The selection is read one data shard at a time (its file is named after the shard), so memory
follows a shard's selection, never the whole output's.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from finecap import storage
from finecap.errors import UserError

SELECTION_DIR = "balance"  # OUT/balance, where `finecap balance` and a balanced build write it


class SelectionError(UserError, ValueError):
    """A selection that is missing or unreadable; the message names it."""


def selection_uri(output: str) -> str:
    return storage.join(output, SELECTION_DIR)


def read_summary(uri: str) -> dict | None:
    """The selection's summary.json (written last: None means no complete selection there)."""
    path = storage.join(uri, "summary.json")
    if not storage.exists(path):
        return None
    return json.loads(storage.read_bytes(path))


class Selection:
    """The kept (key, region index) pairs of a selection, loaded per shard on demand."""

    def __init__(self, uri: str):
        summary = read_summary(uri)
        if summary is None:
            raise SelectionError(f"balance.selection: no complete selection at {uri} (no summary.json)")
        self.uri = uri
        self.digest: str = summary["digest"]
        self.origins = frozenset(summary["origins"])
        self._shard: str | None = None
        self._kept: dict[str, frozenset[int]] = {}

    def kept(self, shard_id: str, key: str) -> frozenset[int]:
        """Indices of the selected regions of row `key` of shard `shard_id`."""
        if shard_id != self._shard:
            self._kept, self._shard = self._load(shard_id), shard_id
        return self._kept.get(key, frozenset())

    def keeps(self, shard_id: str, key: str, index: int, origin: str) -> bool:
        return origin not in self.origins or index in self.kept(shard_id, key)

    def filter_regions(self, shard_id: str, key: str, regions: list[dict]) -> list[dict]:
        """The row's regions the selection keeps, in their order."""
        return [r for i, r in enumerate(regions) if self.keeps(shard_id, key, i, r.get("origin"))]

    def _load(self, shard_id: str) -> dict[str, frozenset[int]]:
        path = storage.join(self.uri, "selection", f"{shard_id}.parquet")
        if not storage.exists(path):  # a shard none of whose regions was selected has no file
            return {}
        fs, local = storage.filesystem(path)
        with fs.open(local, "rb") as f:
            table = pq.read_table(f, columns=["key", "region"])
        kept: dict[str, set[int]] = {}
        for key, region in zip(table.column("key").to_pylist(), table.column("region").to_pylist(), strict=True):
            kept.setdefault(key, set()).add(region)
        return {key: frozenset(indices) for key, indices in kept.items()}

    def __getstate__(self) -> dict:  # dataloader workers load their own shards
        return {**self.__dict__, "_shard": None, "_kept": {}}


def selection_digest_at(uri: str) -> str:
    """The digest a fingerprint records for the selection at `uri` (fails naming the key)."""
    return Selection(uri).digest
