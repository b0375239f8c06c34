"""How many worker processes the embedded Ray keeps alive for a graph (its idle-worker limit)."""

from __future__ import annotations

from finecap.runtime.graph import worker_processes

MODEL_STAGES_OFF = [f"{stage}.enabled=false" for stage in ("caption", "phrases", "detect", "ocr", "regions")]


def test_actors_plus_the_smallest_tasks_that_fit(local_config):
    # Two captioner actors and four local-caption actors, plus 2 CPUs of quarter-CPU write tasks.
    assert worker_processes(local_config(), cpus=2) == 6 + 8
    assert worker_processes(local_config(*MODEL_STAGES_OFF), cpus=2) == 8
    assert worker_processes(local_config(*MODEL_STAGES_OFF), cpus=3) == 12


def test_an_autoscaled_actor_pool_counts_at_its_largest(local_config):
    config = local_config(*MODEL_STAGES_OFF, "caption.enabled=true", "caption.resources.max_concurrency=3")
    assert worker_processes(config, cpus=2) == 2 * 3 + 8  # two captioners, up to 3 actors each
