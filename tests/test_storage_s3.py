"""Input and output on s3:// through fsspec/s3fs, against moto's S3-compatible server on 127.0.0.1.

The endpoint and credentials travel as environment variables (AWS_ENDPOINT_URL and friends),
which botocore honours and Ray workers receive (runtime/ray_session.py), exactly as a user on a
real object store would set them.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import numpy as np
import pytest
from PIL import Image

from finecap import storage
from finecap.runtime.resume import committed_for_run
from finecap.validate import validate_output
from tests.conftest import LOCAL_YAML, REPO, png_bytes
from tests.report.helpers import detector, ocr, write_output

BUCKET = "finecap-test"
MODEL_STAGES = ("caption", "phrases", "detect", "ocr", "regions")  # off: this is about storage


def _moto_server() -> tuple[subprocess.Popen, str, int]:
    """moto's server in a process of its own on a free loopback port.

    Not in the test process: moto's server imports Flask, whose context-bound globals then sit in
    sys.modules, and vLLM's CPU platform walks every module's attributes when an engine starts
    ("Working outside of application context" from each later engine fixture).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
            return server, "127.0.0.1", port
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"moto's server exited with {server.returncode}") from None
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("moto's server did not answer within 60 s")


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on a free loopback port, one bucket, and the variables pointing at it."""
    s3fs = pytest.importorskip("s3fs")
    server, host, port = _moto_server()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "finecap-test",
        "AWS_SECRET_ACCESS_KEY": "finecap-test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("AWS_PROFILE", raising=False)
        s3fs.S3FileSystem.clear_instance_cache()  # no instance built before these variables
        # moto keeps buckets per process: a module that reuses this fixture finds it made already
        s3fs.S3FileSystem().makedirs(BUCKET, exist_ok=True)
        yield env
        s3fs.S3FileSystem.clear_instance_cache()
    server.terminate()
    server.wait(30)


@pytest.fixture
def prefix(s3_env) -> str:
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"


def _client():
    import boto3

    return boto3.client("s3")  # a second, independent client: what another process would see


def test_storage_sees_what_other_writers_did(prefix):
    folder = storage.join(prefix, "_manifest")
    assert storage.list_files(folder, ".json") == [] and not storage.exists(folder)
    storage.write_bytes(storage.join(folder, "part-000000.json"), b"{}")
    storage.write_bytes(storage.join(folder, "sub", "x.json"), b"{}")  # a "directory" is not a file
    assert storage.list_files(folder, ".json") == [f"{folder}/part-000000.json"]
    key = folder.removeprefix(f"s3://{BUCKET}/")
    _client().put_object(Bucket=BUCKET, Key=f"{key}/part-000001.json", Body=b"{}")
    _client().delete_object(Bucket=BUCKET, Key=f"{key}/part-000000.json")
    assert storage.list_files(folder, ".json") == [f"{folder}/part-000001.json"]
    assert not storage.exists(f"{folder}/part-000000.json")
    storage.remove(folder, recursive=True)
    assert storage.list_files(folder) == [] and not storage.exists(folder)


def test_image_folder_source_reads_s3_folders_and_globs(prefix, local_config):
    from finecap.sources import make_source

    for name in ("a.png", "sub/b.png", "c.jpg", "notes.txt"):
        storage.write_bytes(storage.join(prefix, "in", name), png_bytes())
    folder = make_source(local_config(**{"source.uri": f"{prefix}/in"}))
    specs = folder.plan()
    assert [i["key"] for s in specs for i in s.items] == ["a.png", "c.jpg", "sub/b.png"]
    rows = folder.read(specs[0])
    assert rows.column("image_bytes").to_pylist()[0] == png_bytes()
    assert rows.column("url").to_pylist()[0] == f"{prefix}/in/a.png"
    glob = make_source(local_config(**{"source.uri": f"{prefix}/in/*.png"})).plan()
    assert [i["key"] for s in glob for i in s.items] == ["a.png"]


def test_commit_on_s3_is_exactly_once_and_a_shard_without_manifest_is_redone(prefix, local_config):
    from finecap.report.gallery import GalleryOptions, write_gallery
    from finecap.report.stats import collect_stats

    out = f"{prefix}/out"
    cfg = local_config("source.shard_size=4", **{"output.uri": out})
    regions = {"img01.png": [detector([0.1, 0.1, 0.5, 0.5], "a box", "a box"), ocr([0.6, 0.6, 0.9, 0.7], "HI")]}
    manifests = write_output(cfg, regions_by_key=regions)
    assert [m["rows_in"] for m in manifests] == [4, 4, 3]
    report = validate_output(out)
    assert report.ok, report.problems
    assert (report.rows, report.rejects) == (10, 1)
    assert storage.list_files(storage.join(out, "_staging")) == []
    # A crash after the data PUT but before the manifest PUT: the shard is not committed.
    storage.remove(storage.join(out, "_manifest", "part-000001.json"))
    assert sorted(committed_for_run(out, resume=True)) == ["part-000000", "part-000002"]
    report = validate_output(out)  # its data file is an orphan: never read, a warning only
    assert report.ok and [o.rsplit("/", 1)[-1] for o in report.orphans] == ["part-000001.parquet"], report.problems
    assert report.rows + report.rejects == 7 and report.orphans[0].startswith("s3://")
    write_output(cfg, regions_by_key=regions)  # the rerun rewrites every shard under the same names
    report = validate_output(out)
    assert report.ok and (report.rows, report.rejects) == (10, 1), report.problems
    # The report reads shards through fsspec range reads and writes its files with single PUTs.
    assert collect_stats(out)["regions"]["total"] == 2
    assert write_gallery(out, GalleryOptions(per_page=8)) == 2
    assert storage.exists(f"{out}/report/gallery/page-0002.html")
    assert storage.exists(f"{out}/report/gallery/images/00010.jpg")


def _noise_png(seed: int, size=(320, 272)) -> bytes:
    """A textured image that passes the default quality filters (a flat one is 'blurry')."""
    pixels = np.random.default_rng(seed).integers(40, 215, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _finecap(args: list[str], env: dict, home) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    full_env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "finecap.cli", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args[0]} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_build_validate_and_report_from_s3_to_s3(prefix, s3_env, tmp_path):
    for i in range(5):
        storage.write_bytes(f"{prefix}/in/img{i}.png", _noise_png(i))
    storage.write_bytes(f"{prefix}/in/broken.png", b"\x89PNG not really")
    out = f"{prefix}/out"
    args = ["build", "--config", str(LOCAL_YAML), "--input", f"{prefix}/in", "--output", out,
            "--set", "source.shard_size=4", *[f"--set={s}.enabled=false" for s in MODEL_STAGES]]
    built = _finecap(args, s3_env, tmp_path)
    assert "2/2 shards committed" in built.stdout and "5 rows written, 1 rejected" in built.stdout
    assert "OK:" in _finecap(["validate", out], s3_env, tmp_path).stdout
    assert "gallery:" in _finecap(["report", out], s3_env, tmp_path).stdout
    assert storage.read_bytes(f"{out}/README.md").startswith(b"---\n")
    assert storage.exists(f"{out}/report/index.html") and storage.exists(f"{out}/report/plots/image_size.png")
    stats = json.loads(storage.read_bytes(f"{out}/report/stats.json"))
    assert (stats["rows"], stats["rejects"], stats["rejects_by_reason"]) == (5, 1, {"prepare/decode_error": 1})
    named = sorted(f"{out}/{json.loads(storage.read_bytes(uri))['files']['data']}"
                   for uri in storage.list_files(f"{out}/_manifest", ".json"))
    assert len(named) == 2 and storage.list_files(f"{out}/data", ".parquet") == named  # no orphan left
    assert storage.list_files(f"{out}/_staging") == []
    rerun = _finecap(args, s3_env, tmp_path)
    assert "0/0 shards committed (2 already done)" in rerun.stdout
