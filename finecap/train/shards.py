"""Streaming FineCap shards from any fsspec URI, split without overlap across ranks and workers.

The unit of work is a slice of one Parquet row group: only the footers are read to plan, and a
reader holds one row group at a time, so memory does not grow with the dataset. Each epoch the
units are shuffled with the seed and dealt round-robin to the `n_slots` readers (ranks x
dataloader workers), so within an epoch no two readers see the same row. A reader's place is
(epoch, unit, row): small, exact, and enough to resume without replaying anything.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from finecap import storage
from finecap.dataset import data_file_uris, is_output

# What the trainer reads; the rest of a row (quality, provenance, ...) stays on disk.
TRAIN_COLUMNS = ("key", "image", "width", "height", "captions", "regions")


@dataclass(frozen=True)
class Unit:
    file: str
    row_group: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Position:
    """Where a reader is: the next row to read is row `row` of unit `unit` in epoch `epoch`'s order."""

    epoch: int = 0
    unit: int = 0
    row: int = 0

    def as_list(self) -> list[int]:
        return [self.epoch, self.unit, self.row]


def data_files(uri: str) -> list[str]:
    """The committed data files of a FineCap output, or the parquet files of a plain folder.

    In an output only the files its manifests name are read: a data file no manifest names is a
    shard still being written or the version a rebuild replaced, and training on it would count
    rows twice or train on rows that were never committed.
    """
    if is_output(uri):
        files = data_file_uris(uri)
        if not files:
            raise FileNotFoundError(f"{uri} is a FineCap output with no committed shards (no {uri}/_manifest/*.json)")
        return files
    files = storage.list_files(uri, ".parquet")
    if not files:
        raise FileNotFoundError(f"no parquet files under {uri} (and no FineCap output there: no data/ or _manifest/)")
    return files


def plan_units(uri: str, min_units: int = 1) -> list[Unit]:
    """One unit per row group, halved until there are at least `min_units` (tiny datasets, many readers)."""
    units = []
    for file in data_files(uri):
        fs, path = storage.filesystem(file)
        with fs.open(path, "rb") as f:
            meta = pq.ParquetFile(f).metadata
        for rg in range(meta.num_row_groups):
            rows = meta.row_group(rg).num_rows
            if rows:
                units.append(Unit(file, rg, 0, rows))
    total = sum(u.rows for u in units)
    if total < min_units:
        raise ValueError(f"{uri} has {total} rows, fewer than the {min_units} readers that need one each")
    while len(units) < min_units:
        big = max(range(len(units)), key=lambda i: units[i].rows)
        u = units[big]
        mid = u.start + u.rows // 2
        units[big : big + 1] = [Unit(u.file, u.row_group, u.start, mid), Unit(u.file, u.row_group, mid, u.stop)]
    return units


def epoch_units(units: list[Unit], slot: int, n_slots: int, epoch: int, seed: int, shuffle: bool) -> list[Unit]:
    """The units reader `slot` of `n_slots` reads in `epoch` (disjoint from every other slot's)."""
    order = list(range(len(units)))
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(len(units)).tolist()
    return [units[i] for i in order[slot::n_slots]]


def read_unit(unit: Unit, columns: tuple[str, ...] = TRAIN_COLUMNS) -> pa.Table:
    fs, path = storage.filesystem(unit.file)
    with fs.open(path, "rb") as f:
        parquet = pq.ParquetFile(f)
        present = [c for c in columns if c in parquet.schema_arrow.names]
        table = parquet.read_row_group(unit.row_group, columns=present)
    return table.slice(unit.start, unit.rows)


def row_seed(seed: int, epoch: int, key: str) -> list[int]:
    """Per-row randomness that does not depend on which reader got the row."""
    return [seed, epoch, zlib.crc32(key.encode())]


def stream_rows(
    units: list[Unit],
    slot: int,
    n_slots: int,
    seed: int,
    shuffle: bool = True,
    start: Position | None = None,
    epochs: int | None = None,
    columns: tuple[str, ...] = TRAIN_COLUMNS,
    select: Callable[[Unit, dict], dict] | None = None,
) -> Iterator[tuple[dict, Position]]:
    """Rows of reader `slot`, each with the position just after it; endless unless `epochs` is
    set. `select` rewrites each row knowing its unit (stage III's balanced selection)."""
    pos = start or Position()
    epoch = pos.epoch
    while epochs is None or epoch < epochs:
        mine = epoch_units(units, slot, n_slots, epoch, seed, shuffle)
        if not mine:
            raise ValueError(f"reader {slot} of {n_slots} has no data")
        first_unit = pos.unit if epoch == pos.epoch else 0
        for u in range(first_unit, len(mine)):
            rows = read_unit(mine[u], columns).to_pylist()
            if select is not None:
                rows = [select(mine[u], row) for row in rows]
            order = np.arange(len(rows))
            if shuffle:
                order = np.random.default_rng([seed, epoch, slot, u]).permutation(len(rows))
            first_row = pos.row if (epoch == pos.epoch and u == pos.unit) else 0
            for r in range(first_row, len(rows)):
                yield rows[order[r]], Position(epoch, u, r + 1)
        epoch += 1


def iter_all_rows(uri: str, columns: tuple[str, ...] = TRAIN_COLUMNS, limit: int | None = None) -> Iterator[dict]:
    """Every row once, in file order (evaluation), one row group in memory at a time."""
    seen = 0
    for unit in plan_units(uri):
        for row in read_unit(unit, columns).to_pylist():
            if limit is not None and seen >= limit:
                return
            seen += 1
            yield row
