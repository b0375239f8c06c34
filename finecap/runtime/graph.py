"""The Ray Data graph: shard specs -> read -> stages -> staged pieces.

Stages that hold a model run in actor pools (the model loads once per actor); the rest run as
tasks. Each is placed with the resources its config declares. On one machine reading runs in the
tasks of the first stage (fetch or prepare), so Ray Data fuses the two.
"""

from __future__ import annotations

import math
import time

import pyarrow as pa

from finecap.config import PipelineConfig
from finecap.runtime.isolation import IsolatedStage, Isolation, load_stage
from finecap.runtime.rebuild import RebuildPlan, read_shard
from finecap.sources import ShardSpec, make_source
from finecap.stages import pipeline_stages, stage_model
from finecap.stages.write import ADHOC_RUN, SHARD_ROWS, PieceWriter

# Staging is I/O: a fraction of a CPU leaves room for the model stages.
IO_CPUS = 0.25


def read_shards(batch: pa.Table, config: PipelineConfig, plan: RebuildPlan | None = None) -> pa.Table:
    """Ray task body: one shard spec row in, that shard's rows out (read back when rebuilt)."""
    source = make_source(config)
    tables = []
    for row in batch.to_pylist():
        started = time.perf_counter()
        table = read_shard(ShardSpec(row["shard_id"], row["num_rows"], row["items"]), source, plan)
        per_row = (time.perf_counter() - started) / max(table.num_rows, 1)
        table = table.append_column("_seconds_read", pa.array([per_row] * table.num_rows))
        # The shard's size on every row: the writer commits a shard that arrives whole directly.
        tables.append(table.append_column(SHARD_ROWS, pa.array([row["num_rows"]] * table.num_rows, pa.int64())))
    return pa.concat_tables(tables)


def run_stage_task(batch: pa.Table, stage_cls: type, config: PipelineConfig, kwargs: dict,
                   isolation: Isolation) -> pa.Table:
    return IsolatedStage(stage_cls(config, **kwargs), isolation)(batch)


def write_pieces(batch: pa.Table, config: PipelineConfig, config_hash: str, run_id: str = ADHOC_RUN,
                 provenance: dict | None = None) -> pa.Table:
    return PieceWriter(config, config_hash, run_id, **(provenance or {}))(batch)


class StageActor:
    """Holds one stage (and its model) for the life of a Ray actor."""

    def __init__(self, stage_cls: type, config: PipelineConfig, kwargs: dict, isolation: Isolation):
        model = stage_model(config, stage_cls, kwargs)
        self.stage = IsolatedStage(load_stage(stage_cls, config, kwargs, isolation, model), isolation)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.stage(batch)


def _actor_pool(res):
    from ray.data import ActorPoolStrategy

    if res.max_concurrency and res.max_concurrency > res.concurrency:
        return ActorPoolStrategy(min_size=res.concurrency, max_size=res.max_concurrency)
    return ActorPoolStrategy(size=res.concurrency)


def worker_processes(config: PipelineConfig, cpus: float) -> int:
    """Worker processes the graph keeps busy at once on `cpus` CPUs: its actors, plus as many
    tasks as fit in the CPUs at the smallest task size."""
    actors, task_cpus = 0, [IO_CPUS]
    for stage_cls, _ in pipeline_stages(config):
        res = stage_cls.resources(config)
        if stage_cls.holds_model:
            actors += max(res.concurrency, res.max_concurrency or 0)
        elif res.num_cpus > 0:
            task_cpus.append(res.num_cpus)
    return actors + math.ceil(cpus / min(task_cpus))


def build_dataset(config: PipelineConfig, specs: list[ShardSpec], config_hash: str, journal_root: str,
                  run_id: str = ADHOC_RUN, plan: RebuildPlan | None = None, provenance: dict | None = None):
    """The graph over `specs`; with a rebuild `plan`, only the stages some row needs run."""
    import ray
    from ray.data import TaskPoolStrategy

    stages = pipeline_stages(config)
    if plan is not None:
        needed = set(plan.graph_stages([cls.name for cls, _ in stages]))
        stages = [(cls, kwargs) for cls, kwargs in stages if cls.name in needed]
    isolation = Isolation.from_config(config, journal_root)
    restarts = config.run.max_worker_restarts
    # fetch or prepare: a task stage (in a rebuild maybe a model stage: reads then run as tasks
    # beside it at the first stage's width).
    first = stages[0][0].resources(config) if stages else config.prepare.resources
    ds = ray.data.from_items([s.to_row() for s in specs], override_num_blocks=len(specs))
    if config.run.ray_address:
        # On a cluster reads stay small tasks of their own: fused into the fetch tasks, the fetches
        # of the two-node test cluster all ran on one node (tests/stages/test_fetch_cluster.py).
        read_cpus, read_compute = IO_CPUS, None
    else:
        # One machine: read inside the first stage's tasks (same CPUs and width, so Ray Data fuses
        # them). As tasks of their own, reads ran many at once, each in a worker process that Ray
        # later killed and restarted (see ray_session.py), and every image made an extra trip
        # through the object store: ~3x the CPU time of the whole prepare stage
        # (benchmarks/cpu_overhead.py).
        read_cpus, read_compute = first.num_cpus, TaskPoolStrategy(size=first.concurrency)
    ds = ds.map_batches(
        read_shards,
        fn_kwargs={"config": config, "plan": plan},
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=read_cpus,
        compute=read_compute,
        max_retries=restarts,  # as the first stage's tasks, so the two still fuse
    )
    for stage_cls, kwargs in stages:
        res = stage_cls.resources(config)
        common = dict(batch_size=res.batch_size, batch_format="pyarrow", num_cpus=res.num_cpus)
        if res.num_gpus:
            common["num_gpus"] = res.num_gpus
        if stage_cls.holds_model:
            ds = ds.map_batches(
                StageActor,
                fn_constructor_kwargs={"stage_cls": stage_cls, "config": config, "kwargs": kwargs,
                                       "isolation": isolation},
                compute=_actor_pool(res),
                # Restart a crashed actor (a bounded number of times: each crash narrows the rows
                # isolation suspects) and retry its batches. These explicit args also keep Ray
                # Data from fusing the preceding CPU stage into the actor, which would make the
                # model wait on decoding.
                max_restarts=restarts,
                max_task_retries=-1,
                **common,
            )
        else:
            ds = ds.map_batches(
                run_stage_task,
                fn_kwargs={"stage_cls": stage_cls, "config": config, "kwargs": kwargs, "isolation": isolation},
                compute=TaskPoolStrategy(size=res.concurrency),
                max_retries=restarts,  # Ray's default retries a task whose worker dies forever
                **common,
            )
    return ds.map_batches(
        write_pieces,
        fn_kwargs={"config": config, "config_hash": config_hash, "run_id": run_id, "provenance": provenance},
        batch_size=None,
        batch_format="pyarrow",
        num_cpus=IO_CPUS,
        max_retries=restarts,
    )
