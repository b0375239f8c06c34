"""The one interface every pipeline step implements.

A stage is built once per worker (it loads its model there) and called on batches:
`stage(batch: pa.Table) -> pa.Table`. It only adds columns or marks rows rejected; rows already
rejected by an earlier stage pass through untouched. Per-row failures become reject marks
(stage + reason + detail); only infrastructure failures raise, and Ray retries those.
It declares its resources from config so Ray can place it, and it is a plain callable, so
tests run it without Ray.

For incremental rebuilds (finecap/stages/fingerprints.py, finecap/runtime/rebuild.py) a stage also
declares, from its own config section: `inputs` (the stages whose output it reads), `semantic`
(the settings that change its output: model and revision, prompt text, thresholds, sampling;
never resources, devices, endpoints, retries or thread counts), `provenance` (the models and
prompts it uses) and `clear` (removes its output from kept rows before it runs again). A
`transient` stage's output is not kept in the dataset, so it runs again whenever a stage reading
it does. Rows carrying the working column `_rerun` are gated: a stage works on a row only when
the row is new (`*`) or names the stage.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections import Counter
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from finecap.config import PipelineConfig, Resources

REJECT_COLUMNS = ("reject_stage", "reject_reason", "reject_detail")
# Working column of rebuilt rows: "*" (a new row: every stage) or ",stage,stage," (the stages
# that run again on a kept row). Absent in a first build: every stage works on every row.
RERUN = "_rerun"
# Working columns `_counts_NAME`: per row, a JSON object {reason: n} of what a stage counted on
# that row (null: nothing). The writer sums them over a shard's written rows into its manifest's
# NAME (stages/write.py, runtime/commit.py); they never reach the data files.
COUNTS_PREFIX = "_counts_"


class Stage(ABC):
    """Base class: subclasses set `name`, implement `process`, and say whether they hold a model."""

    name: ClassVar[str]
    # Model stages run in a Ray actor pool (the model loads once per actor); others run as tasks.
    holds_model: ClassVar[bool] = False
    # Output only later stages read, never written to the dataset (phrases, prepare's model copy).
    transient: ClassVar[bool] = False
    # Manifest counts this stage makes (`_counts_NAME` columns): a rebuild that does not rerun the
    # stage carries them over from the shard's committed manifest (runtime/rebuild.py).
    counts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: PipelineConfig):
        self.config = config

    @classmethod
    def enabled(cls, config: PipelineConfig) -> bool:
        return True

    @classmethod
    @abstractmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        """CPUs, GPUs, concurrency and batch size this stage asks Ray for."""

    @classmethod
    def inputs(cls, config: PipelineConfig) -> tuple[str, ...]:
        """Names of the stages (or "source") whose output this stage reads."""
        return ()

    @classmethod
    def semantic(cls, config: PipelineConfig) -> dict:
        """The settings that change this stage's output (JSON-able): its fingerprint's content."""
        return {}

    @classmethod
    def provenance(cls, config: PipelineConfig) -> list[dict]:
        """The models and prompts this stage uses: [{stage, name, model, revision[, prompt_id]}]."""
        return []

    @classmethod
    def clear(cls, batch: pa.Table) -> pa.Table:
        """Kept rows without this stage's output, before the stage runs on them again."""
        return batch

    @abstractmethod
    def process(self, batch: pa.Table) -> pa.Table:
        """Work on the rows not yet rejected; return the same rows with new columns or reject marks."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.perf_counter()
        batch = ensure_reject_columns(batch)
        active_mask = pc.is_null(batch.column("reject_stage"))
        if RERUN in batch.column_names:
            active_mask = pc.and_(active_mask, reruns(batch.column(RERUN), self.name))
        active = batch.filter(active_mask)
        if not active.num_rows:
            return batch  # nothing for this stage here: no busy time recorded
        done = self.process(active)
        if done.num_rows != active.num_rows:
            raise RuntimeError(f"stage {self.name} returned {done.num_rows} rows for {active.num_rows}")
        inactive = batch.filter(pc.invert(active_mask))
        out = pa.concat_tables([done, inactive], promote_options="permissive") if inactive.num_rows else done
        # Busy time spread over the batch's rows, so per-shard sums are exact wherever rows travel.
        per_row = (time.perf_counter() - started) / max(out.num_rows, 1)
        return set_column(out, f"_seconds_{self.name}", pa.array([per_row] * out.num_rows, pa.float64()))


def counts_column(per_row: list[Counter]) -> pa.Array:
    """A `_counts_NAME` column: one JSON object per row that counted something, else null."""
    return pa.array([json.dumps(dict(sorted(c.items()))) if c else None for c in per_row], pa.string())


def reruns(column: pa.ChunkedArray, stage: str) -> pa.ChunkedArray:
    """Per row: whether `stage` works on it (a new row, or a kept row naming the stage)."""
    fresh = pc.equal(column, "*")
    named = pc.match_substring(column, f",{stage},")
    return pc.fill_null(pc.or_(fresh, named), True)


def ensure_reject_columns(batch: pa.Table) -> pa.Table:
    for column in REJECT_COLUMNS:
        if column not in batch.column_names:
            batch = batch.append_column(column, pa.nulls(batch.num_rows, pa.string()))
    return batch


def set_column(table: pa.Table, name: str, values: pa.Array | list) -> pa.Table:
    """Add or replace a column."""
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(values)
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


class RejectMarks:
    """Collects per-row rejections while a stage works through a batch, then applies them."""

    def __init__(self, stage: str, num_rows: int):
        self.stage = stage
        self.reasons: list[str | None] = [None] * num_rows
        self.details: list[str | None] = [None] * num_rows

    def reject(self, row: int, reason: str, detail: str = "") -> None:
        self.reasons[row] = reason
        self.details[row] = detail[:2000]

    def is_rejected(self, row: int) -> bool:
        return self.reasons[row] is not None

    def apply(self, batch: pa.Table) -> pa.Table:
        batch = ensure_reject_columns(batch)
        stages = [self.stage if r is not None else None for r in self.reasons]
        batch = set_column(batch, "reject_stage", pa.array(stages, pa.string()))
        batch = set_column(batch, "reject_reason", pa.array(self.reasons, pa.string()))
        return set_column(batch, "reject_detail", pa.array(self.details, pa.string()))


def mark_rejected(batch: pa.Table, stage: str, reason: str, detail: str) -> pa.Table:
    """Reject every row not rejected yet with one reason (the runtime's isolation verdicts)."""
    batch = ensure_reject_columns(batch)
    fresh = pc.is_null(batch.column("reject_stage"))
    for name, value in (("reject_stage", stage), ("reject_reason", reason), ("reject_detail", detail[:2000])):
        values = pc.if_else(fresh, pa.scalar(value, pa.string()), batch.column(name).cast(pa.string()))
        batch = set_column(batch, name, values)
    return batch
