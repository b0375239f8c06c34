"""Exactly-once under faults: a killed stage actor is replaced and nothing is lost or doubled.

The run ends with `finecap validate` passing, every input key exactly once (data or rejects),
and no Ray process of the run left behind. A SIGKILLed driver and its rerun are the soak's
(tests/soak/soak.py, `make soak`, run by CI), which checks the same and more.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from finecap.runtime.leftovers import processes_using
from tests.conftest import LOCAL_YAML, NO_LOCAL_CAPTIONS, REPO

pytestmark = pytest.mark.slow
ONE_CAPTIONER = ("caption.captioners=[{name: a, model: 'tiny:vlm-a', max_tokens: 24, engine_options: "
                 "{dtype: float32, max_model_len: 1024, enforce_eager: true}}]")


@pytest.fixture
def work():
    """A short Ray work dir (Ray's socket paths are bounded), checked for leftovers at the end."""
    path = Path(tempfile.mkdtemp(prefix="fc-w-", dir="/tmp"))
    yield path
    deadline = time.monotonic() + 60  # Ray's processes take a moment to exit after the driver
    while (leftovers := processes_using(path)) and time.monotonic() < deadline:
        time.sleep(1)
    leftovers = [p for p in leftovers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for proc in leftovers:
        proc.kill()
    shutil.rmtree(path, ignore_errors=True)
    assert leftovers == [], f"Ray processes left behind: {[p.pid for p in leftovers]}"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from finecap.samples.source import write_sample_source

    return write_sample_source(tmp_path_factory.mktemp("faults") / "src", n_scenes=24, seed=21,
                               include_photos=False)


def _build_cmd(source, out, work, *sets):
    cmd = [sys.executable, "-m", "finecap.cli", "build", "--config", str(LOCAL_YAML), "--input", str(source),
           "--output", str(out), "--set", f"run.work_dir={work}", "--set", "source.shard_size=4",
           "--set", "caption.resources.batch_size=4", "--set", "caption.assign=all"]
    for item in (ONE_CAPTIONER, *NO_LOCAL_CAPTIONS, *sets):
        cmd += ["--set", item]
    return cmd


def _wait_for(predicate, timeout: float, proc: subprocess.Popen, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the build ended (exit {proc.returncode}) before {what}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _manifests(out: Path) -> list[Path]:
    return sorted((out / "_manifest").glob("*.json")) if (out / "_manifest").exists() else []


def _assert_exactly_once(out: Path, n: int) -> None:
    check = subprocess.run([sys.executable, "-m", "finecap.cli", "validate", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and check.stdout.startswith("OK:"), check.stdout
    keys = pq.read_table(out / "data", columns=["key"]).column("key").to_pylist()
    keys += pq.read_table(out / "rejects", columns=["key"]).column("key").to_pylist()
    assert len(keys) == len(set(keys)) == n


def _stage_actor(driver_pid: int):
    def find():
        for proc in psutil.Process(driver_pid).children(recursive=True):
            try:
                if "StageActor" in " ".join(proc.cmdline()):
                    return proc
            except psutil.Error:
                continue
        return None

    return find


def _kill(find):
    def attempt() -> bool:
        actor = find()
        try:
            actor and actor.kill()
        except psutil.NoSuchProcess:
            return False
        return actor is not None

    return attempt


def test_killed_caption_actor_is_replaced_and_nothing_is_lost_or_doubled(source, tmp_path, work):
    out = tmp_path / "out"
    proc = subprocess.Popen(_build_cmd(source, out, work), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    # Kill as soon as captioned rows reach the writer: the actor has work behind it then.
    _wait_for(lambda: _manifests(out) or list(out.glob("_staging/*/*")), 600, proc, "rows were staged")
    _wait_for(_kill(_stage_actor(proc.pid)), 120, proc, "the caption actor was killed")
    assert len(_manifests(out)) < 6, "the run ended before the kill mattered"
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-4000:]
    assert len(_manifests(out)) == 6
    _assert_exactly_once(out, 24)
