"""Batches for the stage loops: rows -> samples -> packed batches, in dataloader workers.

Each (rank, worker) pair is one reader slot of `finecap.train.shards`; a batch carries its slot
and the position after its last row, so the loop records exactly what it has consumed and a
resumed run continues there. Batches close at `batch_size` images or `max_tokens` patch tokens,
whichever comes first (a sample that does not fit waits for the next batch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from finecap.train.patches import PackedImages, pack
from finecap.train.shards import Position, Unit, row_seed, stream_rows


@dataclass
class Sample:
    key: str
    patches: torch.Tensor  # [N, 588]
    positions: torch.Tensor  # [N, 2]
    fields: dict = field(default_factory=dict)  # stage-specific (caption text, token ids, ...)

    @property
    def tokens(self) -> int:
        return int(self.patches.shape[0])


@dataclass
class Batch:
    images: PackedImages
    keys: list[str]
    slot: int
    position: Position
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.images.to(device), self.keys, self.slot, self.position,
                     {k: v.to(device) for k, v in self.tensors.items()})


Prepare = Callable[[dict, np.random.Generator], Sample | None]
Collate = Callable[[list[Sample]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Budget:
    batch_size: int
    max_tokens: int | None = None
    row_length: int | None = None

    def fits(self, samples: list[Sample], extra: Sample) -> bool:
        if len(samples) >= self.batch_size:
            return False
        if self.max_tokens is not None and samples:
            return sum(s.tokens for s in samples) + extra.tokens <= self.max_tokens
        return True


class BatchStream(IterableDataset):
    """Endless packed batches of one rank; dataloader workers split the rank's share further."""

    def __init__(
        self,
        units: list[Unit],
        prepare: Prepare,
        collate: Collate,
        budget: Budget,
        rank: int,
        world: int,
        workers: int,
        seed: int,
        shuffle: bool,
        positions: dict[int, Position] | None = None,
        select: Callable[[Unit, dict], dict] | None = None,
    ) -> None:
        self.units, self.prepare, self.collate, self.budget = units, prepare, collate, budget
        self.select = select
        self.rank, self.world, self.workers = rank, world, max(1, workers)
        self.seed, self.shuffle = seed, shuffle
        self.positions = positions or {}

    @property
    def n_slots(self) -> int:
        return self.world * self.workers

    def slot(self) -> int:
        info = get_worker_info()
        return self.rank * self.workers + (info.id if info else 0)

    def __iter__(self) -> Iterator[Batch]:
        slot = self.slot()
        rows = stream_rows(self.units, slot, self.n_slots, self.seed, self.shuffle, self.positions.get(slot),
                           select=self.select)
        pending: list[Sample] = []
        last = self.positions.get(slot, Position())
        for row, pos in rows:
            sample = self.prepare(row, np.random.default_rng(row_seed(self.seed, pos.epoch, row["key"])))
            if sample is None:
                last = pos
                continue
            if pending and not self.budget.fits(pending, sample):
                yield self._batch(pending, slot, last)
                pending = []
            pending.append(sample)
            last = pos
        if pending:  # only reached with a finite stream
            yield self._batch(pending, slot, last)

    def _batch(self, samples: list[Sample], slot: int, position: Position) -> Batch:
        images = pack([(s.patches, s.positions) for s in samples], self.budget.row_length)
        return Batch(images, [s.key for s in samples], slot, position, self.collate(samples))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and resize; the trainer owns the cores


def make_loader(stream: BatchStream, workers: int) -> DataLoader:
    """Reader processes are spawned, not forked: a fork of a process that already runs threads
    (an in-process vLLM engine, Ray, gRPC) can inherit a held lock and hang for ever."""
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=2 if workers else None,
        multiprocessing_context="spawn" if workers else None,
        persistent_workers=False,
    )
