"""Error isolation: a failing batch never ends the run; the rows that fail become rejects.

Every stage call on a worker goes through `IsolatedStage`:
- an exception for a batch retries it in halves, down to single rows; a row that still raises
  becomes a `stage_error` reject (the exception's type and message in `detail`) and the other
  rows go on. Deterministic failures cost about 2n calls for n rows and never loop;
- a worker that dies on a batch (segfault, OOM kill, the watchdog) leaves its journal record
  behind (runtime/journal.py). Ray restarts the worker and retries the batch (bounded by
  `run.max_worker_restarts`); the retry sees the record and runs the batch whole again up to
  `run.crash_retries` times, then in halves, each piece journaled again, so every crash narrows
  the suspects; the single row that still kills its worker becomes a `worker_crash` reject
  (`stage_timeout` when the watchdog ended it). Rows of the batch that were fine are recomputed
  by the retry, never lost.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa

from finecap.config import PipelineConfig
from finecap.errors import UserError
from finecap.runtime.journal import CrashJournal, DeadPiece, Watchdog
from finecap.stages.base import Stage, mark_rejected

log = logging.getLogger(__name__)

STAGE_ERROR = "stage_error"
WORKER_CRASH = "worker_crash"
STAGE_TIMEOUT = "stage_timeout"
LOAD_KEY = "__engine_load__"  # journal key of a model being loaded


@dataclass(frozen=True)
class Isolation:
    """What a worker needs to isolate failures; small and picklable (shipped with each task)."""

    journal_root: str
    crash_retries: int
    batch_timeout_s: float
    load_retries: int = 2

    @classmethod
    def from_config(cls, config: PipelineConfig, journal_root: str) -> Isolation:
        run = config.run
        return cls(journal_root, run.crash_retries, run.batch_timeout_s, run.load_retries)


class IsolatedStage:
    """A stage behind the isolation rules above; called like the stage itself."""

    def __init__(self, stage: Stage, isolation: Isolation):
        self.stage = stage
        self.isolation = isolation
        self.journal = CrashJournal(isolation.journal_root, stage.name)

    def __call__(self, batch: pa.Table) -> pa.Table:
        keys = batch.column("key").to_pylist() if batch.num_rows else []
        dead = self.journal.dead_pieces(set(keys)) if keys else []
        if dead:
            log.warning("%s: a worker died on %d piece(s) of this batch; isolating", self.stage.name, len(dead))
        out = self._run(batch, keys, dead, whole=True)
        for piece in dead:  # this batch's verdicts are in `out`: the evidence has served
            CrashJournal.end(piece.path)
        return out

    def _run(self, rows: pa.Table, keys: list[str], dead: list[DeadPiece], whole: bool) -> pa.Table:
        here = frozenset(keys)
        crashes = [d for d in dead if d.keys == here]
        if not crashes or (whole and len(crashes) <= self.isolation.crash_retries):
            return self._call(rows, keys, dead)
        if rows.num_rows == 1:
            if any(d.timed_out for d in crashes):
                return mark_rejected(rows, self.stage.name, STAGE_TIMEOUT,
                                     f"the stage ran past run.batch_timeout_s={self.isolation.batch_timeout_s}s "
                                     "on this row and its worker was ended")
            return mark_rejected(rows, self.stage.name, WORKER_CRASH,
                                 f"the {self.stage.name} worker died {len(crashes)} time(s) on this row "
                                 "(segfault or out of memory)")
        return self._halves(rows, keys, dead)

    def _call(self, rows: pa.Table, keys: list[str], dead: list[DeadPiece]) -> pa.Table:
        record = self.journal.begin(keys) if keys else None
        if record:
            Watchdog.arm(self.isolation.batch_timeout_s, record)
        try:
            return self.stage(rows)
        except Exception as exc:  # noqa: BLE001 (any failure of one batch is isolated, never fatal)
            failure = exc
        finally:
            if record:
                Watchdog.disarm()
                CrashJournal.end(record)
        if rows.num_rows <= 1:
            return mark_rejected(rows, self.stage.name, STAGE_ERROR,
                                 f"{type(failure).__name__}: {failure}")
        log.warning("%s raised on %d rows (%s: %s); retrying in halves", self.stage.name, rows.num_rows,
                    type(failure).__name__, str(failure)[:200])
        return self._halves(rows, keys, dead)

    def _halves(self, rows: pa.Table, keys: list[str], dead: list[DeadPiece]) -> pa.Table:
        mid = rows.num_rows // 2
        left = self._run(rows.slice(0, mid), keys[:mid], dead, whole=False)
        right = self._run(rows.slice(mid), keys[mid:], dead, whole=False)
        return pa.concat_tables([left, right], promote_options="permissive")


class RunFailed(UserError, RuntimeError):
    """The run cannot go on; str() is the one line the command prints."""


class EngineLoadError(RunFailed):
    """A model stage's engine cannot load: the run fails at start with this one line."""


def run_failure(exc: BaseException) -> RunFailed | None:
    """The one-line failure behind what Ray raised on the driver, if FineCap can name it.

    Ray wraps a worker's exception (RayTaskError, ActorDiedError for a failed constructor) and
    sometimes keeps only its text, so both the exception chain and the text are searched.
    """
    seen, todo = set(), [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, RunFailed):
            return type(current)(str(current))
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    match = re.search(r"EngineLoadError: (.+)", str(exc))
    if match:
        return EngineLoadError(match.group(1).strip())
    if any(name in type(exc).__name__ for name in ("ActorDiedError", "WorkerCrashedError", "ActorUnavailable")):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return RunFailed(f"a stage worker died more times than run.max_worker_restarts allows: "
                         f"{type(exc).__name__}: {first}"[:500])
    return None


@contextmanager
def crash_journal(config: PipelineConfig) -> Iterator[str]:
    """A fresh node-local journal folder for one run, removed at its end.

    Fresh per run, so the workers a killed driver took with it are not taken for crashes by the
    next run. Workers on other nodes of a cluster create the same path on their own disks.
    """
    root = tempfile.mkdtemp(prefix="finecap-journal-", dir=config.run.work_dir or None)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def load_stage(stage_cls: type[Stage], config: PipelineConfig, kwargs: dict, isolation: Isolation,
               model: str | None) -> Stage:
    """Build a model stage, turning any failure to load into one line naming stage, model, reason.

    A load that kills its worker (out of memory, a native crash) would otherwise be restarted
    over and over: the journal counts the deaths since the last load that succeeded, and after
    `load_retries + 1` of them the next start gives up with the same kind of one line.
    """
    journal = CrashJournal(isolation.journal_root, stage_cls.name)
    what = f"{stage_cls.name} stage: model {model or '(none)'}"
    deaths = journal.dead_pieces({LOAD_KEY})
    if len(deaths) > isolation.load_retries:
        raise EngineLoadError(f"{what} could not load: its worker died {len(deaths)} times while loading "
                              "(out of memory or a native crash)")
    record = journal.begin([LOAD_KEY])
    try:
        stage = stage_cls(config, **kwargs)
    except Exception as exc:  # noqa: BLE001 (reported in one line, with the cause chained)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EngineLoadError(f"{what} could not load: {type(exc).__name__}: {message}"[:500]) from exc
    finally:
        CrashJournal.end(record)
    for death in deaths:  # loaded after all: earlier deaths no longer count against the next start
        CrashJournal.end(death.path)
    return stage
