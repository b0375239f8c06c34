"""Joining a real local cluster (`ray start` on 127.0.0.1): credentials reach the cluster's workers
through the setup hook, and none of the cluster's files (its logs included) holds their values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from finecap.runtime.ray_session import ray_session
from tests.conftest import LOCAL_YAML
from tests.runtime.local_cluster import local_cluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
FAKE_SECRET = "fake-cluster-secret-Hq27LmV0"


def test_a_cluster_join_carries_credentials_by_hook_not_in_logs(monkeypatch, caplog):
    import ray

    from finecap.config import load_config

    with local_cluster(num_cpus=1) as cluster:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        config = load_config(LOCAL_YAML, [f"run.ray_address={cluster['address']}"])
        with ray_session(config):
            @ray.remote
            def seen() -> tuple[str | None, str | None]:
                return os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("HF_HUB_OFFLINE")

            assert ray.get(seen.remote()) == (FAKE_SECRET, "1")
            files = [p for p in Path(cluster["temp_dir"]).rglob("*") if p.is_file() and not p.is_socket()]
            assert any(p.name == "runtime_env_agent.log" for p in files)  # the log that used to hold them
            assert [p for p in files if FAKE_SECRET.encode() in _bytes_of(p)] == []
    assert "AWS_SECRET_ACCESS_KEY" in caplog.text and FAKE_SECRET not in caplog.text  # named, not shown


def _bytes_of(path: Path) -> bytes:
    """The file's bytes, or none when Ray replaced it between the listing and the read: Ray rewrites
    files such as `tmp_prom_metrics_service_discovery.json` by rename while the cluster runs (CI
    once failed on exactly that)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
