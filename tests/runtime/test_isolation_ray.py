"""Error isolation on a real embedded Ray: the actor and task wrappers the graph uses, with
workers that segfault, hang or cannot load. Ray restarts and retries; FineCap narrows down."""

from __future__ import annotations

import shutil
import tempfile

import pyarrow as pa
import pytest

from finecap.config import PipelineConfig
from finecap.runtime.graph import StageActor, run_stage_task
from finecap.runtime.isolation import Isolation, run_failure
from finecap.runtime.ray_session import ray_session
from tests.runtime.isolation_stages import (
    BrokenEngineStage,
    HangingStage,
    SegfaultingModelStage,
    SegfaultStage,
)

pytestmark = pytest.mark.slow
BATCH = 4


@pytest.fixture(scope="module")
def session():
    config = PipelineConfig()
    config.run.num_cpus = 2
    work = tempfile.mkdtemp(prefix="fc-iso-", dir="/tmp")  # Ray's socket paths are bounded
    config.run.work_dir = work
    with ray_session(config):
        yield config
    shutil.rmtree(work, ignore_errors=True)


def _rows(n: int):
    import ray

    return ray.data.from_items([{"key": f"k{i}", "value": i} for i in range(n)], override_num_blocks=2)


def _verdicts(ds) -> dict[str, str]:
    table = pa.concat_tables(list(ds.iter_batches(batch_size=None, batch_format="pyarrow")),
                             promote_options="permissive")
    return dict(zip(table.column("key").to_pylist(),
                    [f"{s}/{r}" if r else "done" for s, r in zip(table.column("reject_stage").to_pylist(),
                                                                  table.column("reject_reason").to_pylist(),
                                                                  strict=True)], strict=True))


def _actor(ds, stage_cls, config, isolation):
    from ray.data import ActorPoolStrategy

    return ds.map_batches(
        StageActor,
        fn_constructor_kwargs={"stage_cls": stage_cls, "config": config, "kwargs": {}, "isolation": isolation},
        compute=ActorPoolStrategy(size=1), batch_size=BATCH, batch_format="pyarrow", num_cpus=0.25,
        max_restarts=config.run.max_worker_restarts, max_task_retries=-1,
    )


def test_segfaulting_tasks_and_actors_and_a_hung_actor_lose_only_their_rows(session, tmp_path):
    """One graph as build_dataset makes it: a task stage that segfaults on k5, a model stage that
    hangs on k2 (watchdog at 1 s), a model stage that segfaults on k6."""
    from ray.data import TaskPoolStrategy

    isolation = Isolation(str(tmp_path / "journal"), 0, 1.0)
    ds = _rows(8).map_batches(
        run_stage_task,
        fn_kwargs={"stage_cls": SegfaultStage, "config": session, "kwargs": {}, "isolation": isolation},
        compute=TaskPoolStrategy(size=1), batch_size=BATCH, batch_format="pyarrow", num_cpus=0.25,
        max_retries=session.run.max_worker_restarts,
    )
    ds = _actor(_actor(ds, HangingStage, session, isolation), SegfaultingModelStage, session, isolation)
    verdicts = _verdicts(ds)
    assert len(verdicts) == 8
    assert verdicts.pop("k5") == "segfault/worker_crash"
    assert verdicts.pop("k2") == "hanging/stage_timeout"
    assert verdicts.pop("k6") == "segfault_model/worker_crash"
    assert set(verdicts.values()) == {"done"}


def test_an_engine_that_cannot_load_fails_the_run_in_one_line(session, tmp_path):
    isolation = Isolation(str(tmp_path / "journal"), 1, 600.0)
    with pytest.raises(Exception) as info:
        _verdicts(_actor(_rows(8), BrokenEngineStage, session, isolation))
    failure = run_failure(info.value)
    assert str(failure) == "broken stage: model (none) could not load: OSError: tiny:missing: no such model folder"
