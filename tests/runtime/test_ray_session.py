"""The embedded Ray is private: loopback only, token authentication on, credentials out of its logs.

One real embedded session (`ray_session`, as `finecap build` starts it) serves the module: what
its processes listen on, what its GCS answers without the token, what its logs contain.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import psutil
import pytest

from finecap.runtime.leftovers import processes_using
from finecap.runtime.private_ray import TOKEN_FILE
from finecap.runtime.ray_session import ray_session, secret_env_names, worker_runtime_env
from tests.conftest import LOCAL_YAML

FAKE_SECRET = "fake-secret-Zq81xK0pL2vN7sT4"  # as AWS_SECRET_ACCESS_KEY
FAKE_API_KEY = "sk-fake-4Jd9Qw2Lm8Rt"  # as the openai captioner's api_key_env
CAPTIONER = ("caption.captioners=[{name: srv, model: 'org/m', engine: openai, "
             "openai: {base_urls: ['http://127.0.0.1:9/v1'], api_key_env: FINECAP_TEST_API_KEY}}]")


def _config(*overrides):
    from finecap.config import load_config

    return load_config(LOCAL_YAML, ["run.num_cpus=1", "run.object_store_gib=0.2", *overrides])


@pytest.fixture(scope="module")
def session():
    """An embedded session started with credentials in the driver's environment; yields its temp dir."""
    import ray

    assert not ray.is_initialized()
    before = os.environ.get("RAY_AUTH_MODE")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "fake-key-id-0001")
        mp.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        mp.setenv("FINECAP_TEST_API_KEY", FAKE_API_KEY)
        with ray_session(_config(CAPTIONER)):
            yield Path(ray._private.worker._global_node.get_temp_dir_path())
    assert os.environ.get("RAY_AUTH_MODE") == before  # restored for whatever runs next


def _listening(temp_dir: Path) -> list[tuple[str, str, int]]:
    found = []
    for proc in [*processes_using(temp_dir), psutil.Process()]:
        try:
            found += [(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue
    return found


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def test_every_listening_socket_of_the_session_is_on_loopback(session):
    sockets = _listening(session)
    names = {name for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets  # we did look at Ray's own processes
    assert [s for s in sockets if not _loopback(s[1])] == []


def _gcs_cluster_id(address: str, metadata=()):
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        return stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=30, metadata=metadata)


def test_the_gcs_refuses_a_client_without_the_token(session):
    import grpc
    import ray

    address = ray._private.worker._global_node.gcs_address
    with pytest.raises(grpc.RpcError) as refused:
        _gcs_cluster_id(address)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    token = (session / TOKEN_FILE).read_text()
    assert _gcs_cluster_id(address, [("authorization", f"Bearer {token}")]).cluster_id  # the same call, with it


def test_the_token_is_fresh_private_and_in_no_log(session):
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    assert is_token_auth_enabled()
    token_file = session / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_bytes()
    assert len(token) == 64
    assert _files_containing(session, token) == [token_file]


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_socket() and needle in p.read_bytes()]


def test_credentials_reach_workers_but_no_log(session):
    import ray
    import ray.data

    @ray.remote
    def seen() -> tuple[str | None, str | None]:
        return os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("FINECAP_TEST_API_KEY")

    assert ray.get(seen.remote()) == (FAKE_SECRET, FAKE_API_KEY)
    rows = ray.data.range(2).map_batches(
        lambda b: {"secret": [os.environ.get("AWS_SECRET_ACCESS_KEY")] * len(b["id"])}).take_all()
    assert [r["secret"] for r in rows] == [FAKE_SECRET] * 2
    assert _files_containing(session, FAKE_SECRET.encode()) == []
    assert _files_containing(session, FAKE_API_KEY.encode()) == []
    assert (session / "session_latest" / "logs" / "raylet.out").exists()  # there were logs to search


def test_secrets_stay_out_of_the_runtime_env_and_reach_cluster_workers_by_hook(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("FINECAP_TEST_API_KEY", FAKE_API_KEY)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = _config(CAPTIONER)
    assert {"AWS_SECRET_ACCESS_KEY", "FINECAP_TEST_API_KEY"} <= set(secret_env_names(config))
    embedded = worker_runtime_env(config, embedded=True)
    assert embedded == {"env_vars": embedded["env_vars"]} and embedded["env_vars"]["HF_HUB_OFFLINE"] == "1"
    cluster = worker_runtime_env(config, embedded=False)
    for env in (embedded, cluster):
        assert FAKE_SECRET not in repr(env["env_vars"]) and FAKE_API_KEY not in repr(env["env_vars"])
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    cluster["worker_process_setup_hook"]()  # what each cluster worker runs before its first task
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == FAKE_SECRET
