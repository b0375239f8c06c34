"""Stages that fail the way real engines and decoders do, for the isolation tests.

They are importable by module path, so spawned processes and Ray workers can build them. Each
marks the rows it processed (column `done`), so a test can tell processed rows from rejects.
"""

from __future__ import annotations

import ctypes
import time

import pyarrow as pa

from finecap.config import PipelineConfig, Resources
from finecap.stages.base import Stage, set_column


class _Marking(Stage):
    holds_model = True
    poison = "k5"

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        return Resources(num_cpus=0.25, batch_size=8)

    def fail(self) -> None:
        raise NotImplementedError

    def process(self, batch: pa.Table) -> pa.Table:
        if self.poison in batch.column("key").to_pylist():
            self.fail()
        return set_column(batch, "done", pa.array([True] * batch.num_rows))


class RaisingStage(_Marking):
    """Raises for any batch holding the poison row, as a model raising on one bad input does."""

    name = "raising"

    def fail(self) -> None:
        raise ValueError("cannot handle k5")


class SegfaultStage(_Marking):
    """Reads address 0 on the poison row: a real segmentation fault in the calling thread, as a
    native library's bug gives (a signal sent with os.kill would reach another thread first)."""

    name = "segfault"

    def fail(self) -> None:
        ctypes.string_at(0)


class HangingStage(_Marking):
    """Never returns on the poison row, as a wedged engine call does."""

    name = "hanging"
    poison = "k2"

    def fail(self) -> None:
        while True:
            time.sleep(1)


class SegfaultingModelStage(SegfaultStage):
    """A model stage (an actor) that crashes natively on its own poison row."""

    name = "segfault_model"
    poison = "k6"


class BrokenEngineStage(_Marking):
    """A model stage whose engine cannot load at all."""

    name = "broken"

    def __init__(self, config: PipelineConfig):
        raise OSError("tiny:missing: no such model folder\nsecond line of detail")


def keyed_batch(n: int) -> pa.Table:
    return pa.table({"key": [f"k{i}" for i in range(n)], "value": list(range(n))})
