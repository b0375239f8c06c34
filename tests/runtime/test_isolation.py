"""Error isolation without Ray: exceptions split batches; crashes leave journal records that the
next worker uses to narrow down the row that kills it (real processes, real signals)."""

from __future__ import annotations

import math
import multiprocessing
import os

import pyarrow as pa
import pytest

from finecap.config import PipelineConfig
from finecap.runtime.isolation import (
    EngineLoadError,
    IsolatedStage,
    Isolation,
    RunFailed,
    load_stage,
    run_failure,
)
from finecap.runtime.journal import CrashJournal
from finecap.stages.base import Stage
from tests.runtime.isolation_stages import (
    BrokenEngineStage,
    HangingStage,
    RaisingStage,
    SegfaultStage,
    keyed_batch,
)


def _isolation(tmp_path, retries=1, timeout=600.0) -> Isolation:
    return Isolation(str(tmp_path / "journal"), retries, timeout)


def _verdicts(out: pa.Table) -> dict[str, str]:
    return {k: (r or "done") for k, r in zip(out.column("key").to_pylist(), out.column("reject_reason").to_pylist(),
                                              strict=True)}


class CountingRaising(RaisingStage):
    calls = 0

    def process(self, batch):
        CountingRaising.calls += 1
        return super().process(batch)


def test_an_exception_rejects_only_the_row_that_raises(tmp_path):
    CountingRaising.calls = 0
    out = IsolatedStage(CountingRaising(PipelineConfig()), _isolation(tmp_path))(keyed_batch(16))
    verdicts = _verdicts(out)
    assert verdicts.pop("k5") == "stage_error"
    assert set(verdicts.values()) == {"done"} and len(verdicts) == 15
    detail = out.filter(pa.compute.equal(out.column("key"), "k5")).column("reject_detail")[0].as_py()
    assert detail == "ValueError: cannot handle k5"
    assert out.column("reject_stage").to_pylist().count("raising") == 1
    assert CountingRaising.calls <= 2 * math.ceil(math.log2(16)) + 1  # halving, no loop


def test_rows_rejected_earlier_keep_their_reject(tmp_path):
    batch = keyed_batch(4).append_column("reject_stage", pa.array([None, "prepare", None, None], pa.string()))
    batch = batch.append_column("reject_reason", pa.array([None, "decode_error", None, None], pa.string()))
    batch = batch.append_column("reject_detail", pa.array([None, "bad", None, None], pa.string()))

    class AlwaysRaising(RaisingStage):
        poison = "k0"

        def process(self, b):
            raise RuntimeError("engine error")

    out = IsolatedStage(AlwaysRaising(PipelineConfig()), _isolation(tmp_path))(batch)
    assert _verdicts(out) == {"k0": "stage_error", "k1": "decode_error", "k2": "stage_error", "k3": "stage_error"}


def test_an_empty_batch_passes_through(tmp_path):
    out = IsolatedStage(RaisingStage(PipelineConfig()), _isolation(tmp_path))(keyed_batch(0))
    assert out.num_rows == 0


def _attempt(stage_cls: type[Stage], isolation: Isolation, n: int, queue) -> None:
    """One worker's try at a batch, in its own process (it may die)."""
    out = IsolatedStage(stage_cls(PipelineConfig()), isolation)(keyed_batch(n))
    queue.put(_verdicts(out))


def _until_done(stage_cls: type[Stage], isolation: Isolation, n: int, max_attempts: int) -> tuple[dict, int]:
    """Retry the batch in fresh processes, as Ray does after a worker death."""
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(1, max_attempts + 1):
        queue = ctx.Queue()
        proc = ctx.Process(target=_attempt, args=(stage_cls, isolation, n, queue))
        proc.start()
        proc.join(120)
        assert not proc.is_alive(), "a worker attempt hung past the test's bound"
        if proc.exitcode == 0:
            return queue.get(timeout=10), attempt
    raise AssertionError(f"not done after {max_attempts} attempts")


@pytest.mark.parametrize("retries", [0, 1])
def test_a_row_that_kills_its_worker_is_found_by_bisection(tmp_path, retries):
    isolation = _isolation(tmp_path, retries=retries)
    verdicts, attempts = _until_done(SegfaultStage, isolation, 8, max_attempts=12)
    assert verdicts.pop("k5") == "worker_crash"
    assert set(verdicts.values()) == {"done"} and len(verdicts) == 7
    # crash_retries + 1 whole-batch crashes, one per halving level, then the verdict.
    assert attempts == retries + 1 + math.ceil(math.log2(8)) + 1
    assert not list((tmp_path / "journal").rglob("*.json")), "the evidence is removed once it has served"


def test_a_hanging_row_is_ended_by_the_watchdog_and_rejected(tmp_path):
    isolation = _isolation(tmp_path, retries=0, timeout=1.0)
    verdicts, _ = _until_done(HangingStage, isolation, 4, max_attempts=6)
    assert verdicts.pop("k2") == "stage_timeout"
    assert set(verdicts.values()) == {"done"}


def test_records_of_live_processes_are_not_crashes(tmp_path):
    journal = CrashJournal(str(tmp_path), "s")
    record = journal.begin(["a", "b"])
    assert journal.dead_pieces({"a", "b", "c"}) == []
    CrashJournal.end(record)
    assert not record.exists()


def test_an_engine_that_cannot_load_fails_in_one_line(tmp_path):
    with pytest.raises(EngineLoadError) as info:
        load_stage(BrokenEngineStage, PipelineConfig(), {}, _isolation(tmp_path), "tiny:missing")
    message = str(info.value)
    assert message == "broken stage: model tiny:missing could not load: OSError: tiny:missing: no such model folder"
    # Ray hands the driver a wrapper whose text holds the worker's error: still one line.
    wrapped = RuntimeError(f"ActorDiedError: creation task failed\n  ...\n{type(info.value).__name__}: {message}\n")
    assert str(run_failure(wrapped)) == message
    assert run_failure(RuntimeError("an error FineCap cannot name")) is None


def _die_while_loading(root: str) -> None:
    journal = CrashJournal(root, "broken")
    journal.begin(["__engine_load__"])
    os._exit(9)  # killed mid-load, as by the OOM killer


def test_a_load_that_keeps_killing_its_worker_gives_up(tmp_path):
    isolation = Isolation(str(tmp_path / "journal"), 1, 600.0, load_retries=1)
    ctx = multiprocessing.get_context("spawn")
    for _ in range(2):
        proc = ctx.Process(target=_die_while_loading, args=(isolation.journal_root,))
        proc.start()
        proc.join(60)
    with pytest.raises(EngineLoadError, match="died 2 times while loading"):
        load_stage(BrokenEngineStage, PipelineConfig(), {}, isolation, "tiny:vlm-a")
    assert isinstance(EngineLoadError("x"), RunFailed)
