"""Start an embedded local Ray, or join an existing cluster, without touching the user's home.

The embedded Ray keeps its temp dir (sessions, sockets, logs, spilled objects) in a fresh
folder under `run.work_dir` (or the system temp dir: Ray's socket paths must stay short) and
removes it at the end.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from finecap.config import PipelineConfig
from finecap.runtime.graph import worker_processes
from finecap.runtime.leftovers import PREFIX, end_session, mark_owner, reap_stale_sessions

log = logging.getLogger(__name__)

# Variables the workers need to behave like the driver (offline flags, model cache, vLLM).
_FORWARDED = (
    "FINECAP_CACHE",
    "HF_HUB_OFFLINE",
    "HF_HOME",
    "TRANSFORMERS_OFFLINE",
    "NO_ALBUMENTATIONS_UPDATE",
    "WANDB_MODE",
    "VLLM_CPU_KVCACHE_SPACE",
    "VLLM_ENABLE_V1_MULTIPROCESSING",
    "VLLM_NO_USAGE_STATS",
    "VLLM_CACHE_ROOT",
    # Object storage (s3fs/botocore and fsspec's FSSPEC_<PROTOCOL>_<KWARG> config), so workers read
    # and stage on the same endpoint with the same credentials as the driver. Only variables that
    # are set travel, and they are visible in the job's runtime env: prefer instance roles on clusters.
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CA_BUNDLE",
    "FSSPEC_S3",
    "FSSPEC_S3_ENDPOINT_URL",
    "FSSPEC_S3_KEY",
    "FSSPEC_S3_SECRET",
)


def forwarded_env() -> dict[str, str]:
    """The driver's values of the variables its workers (and launched trainers) need."""
    return {k: os.environ[k] for k in _FORWARDED if k in os.environ}


@contextmanager
def ray_session(config: PipelineConfig) -> Iterator[None]:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        yield  # a caller (a test, a notebook) already owns the session
        return
    env_vars = forwarded_env()
    env_vars.setdefault("TOKENIZERS_PARALLELISM", "false")
    runtime_env = {"env_vars": env_vars}
    if config.run.ray_address:
        log.info("joining Ray cluster at %s", config.run.ray_address)
        ray.init(address=config.run.ray_address, runtime_env=runtime_env, log_to_driver=True)
        try:
            yield
        finally:
            ray.shutdown()
        return
    base = config.run.work_dir or tempfile.gettempdir()
    reap_stale_sessions(base)
    temp_dir = tempfile.mkdtemp(prefix=PREFIX, dir=base)
    mark_owner(temp_dir, os.getpid())
    cpus = config.run.num_cpus or os.cpu_count() or 1
    try:
        ray.init(
            num_cpus=config.run.num_cpus,
            object_store_memory=int(config.run.object_store_gib * 2**30),
            include_dashboard=False,
            runtime_env=runtime_env,
            _temp_dir=temp_dir,
            # Ray kills idle workers while more than this many workers (actors included) exist;
            # the default is the CPU count. Our fractional CPUs run more workers than cores, so
            # task workers were killed between batches and restarted (~1.5 s of CPU each).
            _system_config={"num_workers_soft_limit": worker_processes(config, cpus)},
            configure_logging=True,
            logging_level=logging.WARNING,
        )
        _quiet_data_context()
        yield
    finally:
        ray.shutdown()
        end_session(temp_dir)


def _quiet_data_context() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = sys.stderr.isatty()
    ctx.execution_options.preserve_order = False
