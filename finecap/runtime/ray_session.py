"""Start an embedded local Ray, or join an existing cluster, without touching the user's home.

The embedded Ray keeps its temp dir (sessions, sockets, logs, spilled objects) in a fresh
folder under `run.work_dir` (or the system temp dir: Ray's socket paths must stay short) and
removes it at the end. It is private (private_ray.py): every port on loopback, Ray's token
authentication on with a fresh token, and credentials kept out of Ray's logs.

Credentials (`secret_env_names`) never go into `runtime_env["env_vars"]`: Ray writes that dict to
its runtime-env agent's log (measured: a value passed there was in runtime_env_agent.log).
- Embedded: Ray's processes are children of this driver and inherit its environment, so the
  workers already have them; nothing is forwarded.
- Cluster join: they travel inside a worker setup hook (`worker_process_setup_hook`), a pickled
  function Ray keeps in the cluster's GCS and runs in each worker before any task; the runtime
  env then holds only the hook's name. A one-line warning names the variables (never their
  values). Prefer instance roles or node-local credentials on clusters.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from finecap.config import PipelineConfig
from finecap.redact import SECRET_ENV
from finecap.runtime.graph import worker_processes
from finecap.runtime.leftovers import PREFIX, end_session, mark_owner, reap_stale_sessions
from finecap.runtime.private_ray import private_ray_env

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
    # are set travel; the credentials among them (SECRET_ENV) travel as the module docstring says.
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CA_BUNDLE",
    "FSSPEC_S3",
    "FSSPEC_S3_ENDPOINT_URL",
    *SECRET_ENV,
)


def forwarded_env() -> dict[str, str]:
    """The driver's values of the variables its workers (and launched trainers) need."""
    return {k: os.environ[k] for k in _FORWARDED if k in os.environ}


def secret_env_names(config: PipelineConfig) -> tuple[str, ...]:
    """The variables whose values are credentials: object-store keys and the configured API keys."""
    captioners = [*config.caption.captioners, config.regions.captioner]
    api_keys = tuple(c.openai.api_key_env for c in captioners if c and c.openai.api_key_env)
    return tuple(dict.fromkeys(SECRET_ENV + api_keys))


def worker_runtime_env(config: PipelineConfig, *, embedded: bool) -> dict:
    """The job's runtime env: plain variables in `env_vars`; credentials never there (see above)."""
    secrets = secret_env_names(config)
    env_vars = {k: v for k, v in forwarded_env().items() if k not in secrets}
    env_vars.setdefault("TOKENIZERS_PARALLELISM", "false")
    runtime_env: dict = {"env_vars": env_vars}
    carried = {k: os.environ[k] for k in secrets if os.environ.get(k)}
    if carried and not embedded:
        log.warning("credentials %s reach the cluster's workers through a setup hook kept in the cluster's GCS "
                    "(not in its logs); prefer instance roles", ", ".join(sorted(carried)))
        runtime_env["worker_process_setup_hook"] = _setting_env(carried)
    return runtime_env


def _setting_env(values: dict[str, str]) -> Callable[[], None]:
    def finecap_worker_credentials() -> None:  # pickled by value: workers need not import finecap
        os.environ.update(values)

    return finecap_worker_credentials


def reap_leftover_sessions(config: PipelineConfig) -> str:
    """Remove the embedded sessions of drivers that died (also when this run needs none: a
    rerun that finds every shard committed); returns the folder sessions live in."""
    base = config.run.work_dir or tempfile.gettempdir()
    reap_stale_sessions(base)
    return base


@contextmanager
def ray_session(config: PipelineConfig) -> Iterator[None]:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        yield  # a caller (a test, a notebook) already owns the session
        return
    if config.run.ray_address:  # the cluster's own network and authentication settings apply
        log.info("joining Ray cluster at %s", config.run.ray_address)
        ray.init(address=config.run.ray_address, runtime_env=worker_runtime_env(config, embedded=False),
                 log_to_driver=True)
        try:
            yield
        finally:
            ray.shutdown()
        return
    base = reap_leftover_sessions(config)
    temp_dir = tempfile.mkdtemp(prefix=PREFIX, dir=base)
    mark_owner(temp_dir, os.getpid())
    try:
        with private_ray_env(temp_dir):
            try:
                _init_embedded(config, temp_dir)
                yield
            finally:
                ray.shutdown()
    finally:
        end_session(temp_dir)


def _init_embedded(config: PipelineConfig, temp_dir: str) -> None:
    import ray

    cpus = config.run.num_cpus or os.cpu_count() or 1
    ray.init(
        num_cpus=config.run.num_cpus,
        object_store_memory=int(config.run.object_store_gib * 2**30),
        include_dashboard=False,
        runtime_env=worker_runtime_env(config, embedded=True),
        _temp_dir=temp_dir,
        _node_ip_address="127.0.0.1",  # with private_ray_env's flag: every port on loopback
        # Ray kills idle workers while more than this many workers (actors included) exist;
        # the default is the CPU count. Our fractional CPUs run more workers than cores, so
        # task workers were killed between batches and restarted (~1.5 s of CPU each).
        _system_config={"num_workers_soft_limit": worker_processes(config, cpus)},
        configure_logging=True,
        logging_level=logging.WARNING,
    )
    _quiet_data_context()


def _quiet_data_context() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = sys.stderr.isatty()
    ctx.execution_options.preserve_order = False
