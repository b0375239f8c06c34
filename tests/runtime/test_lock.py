"""The output lock: one driver per output, on a local disk and on S3 (moto on 127.0.0.1)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from finecap import storage
from finecap.config import ConfigError, load_config
from finecap.runtime.lock import LOCK_FILE, LockHeld, LockLost, OutputLock
from tests.conftest import LOCAL_YAML, REPO
from tests.test_storage_s3 import prefix, s3_env  # noqa: F401 (fixtures)

RACERS = 6


def _race(output: str, lease_s: float = 30.0) -> list[OutputLock]:
    """RACERS drivers try to take `output` at the same instant; the locks they got."""
    barrier, won, lock = threading.Barrier(RACERS), [], threading.Lock()

    def take():
        candidate = OutputLock(output, lease_s, lease_s / 4)
        barrier.wait()
        try:
            candidate.acquire()
        except LockHeld:
            return
        with lock:
            won.append(candidate)

    threads = [threading.Thread(target=take) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def _plant_stale(output: str, age_s: float = 120.0) -> None:
    """The lock of a driver on another host that stopped renewing it `age_s` ago."""
    stale = OutputLock(output, 30.0, 5.0)
    record = json.loads(stale.record(time.time() - age_s))
    record.update(host="elsewhere", pid=1)
    assert storage.create_exclusive(storage.join(output, LOCK_FILE), json.dumps(record).encode())


@pytest.fixture(params=["local", "s3"])
def output(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    return f"{request.getfixturevalue('prefix')}/out"


def test_second_driver_is_refused_in_one_line_until_the_first_releases(output):
    first = OutputLock(output, 30.0, 5.0).acquire()
    with pytest.raises(LockHeld) as refused:
        OutputLock(output, 30.0, 5.0).acquire()
    line = str(refused.value)
    assert "\n" not in line and line.startswith(f"{output} is being built by ")
    assert ":" in line and "since " in line and "lease renewed 0s ago" in line
    first.release()
    assert not storage.exists(storage.join(output, LOCK_FILE))
    OutputLock(output, 30.0, 5.0).acquire().release()


def test_of_drivers_starting_at_once_exactly_one_holds_the_lock(output):
    won = _race(output)
    assert len(won) == 1
    held = json.loads(storage.read_bytes(storage.join(output, LOCK_FILE)))
    assert held["owner"] == won[0].owner
    won[0].release()


def test_a_stale_lock_is_taken_over_by_exactly_one_of_racing_drivers(output):
    _plant_stale(output)
    won = _race(output)
    assert len(won) == 1
    held = json.loads(storage.read_bytes(storage.join(output, LOCK_FILE)))
    assert held["owner"] == won[0].owner and held["host"] != "elsewhere"
    won[0].release()


def test_heartbeat_renews_the_lease_and_a_holder_that_was_taken_over_stops(output):
    lock = OutputLock(output, 2.0, 0.2).acquire()
    uri = storage.join(output, LOCK_FILE)
    first = json.loads(storage.read_bytes(uri))["heartbeat"]
    _wait(lambda: json.loads(storage.read_bytes(uri))["heartbeat"] > first, "a heartbeat")
    lock.check()
    # Another driver took over (as if this one had stalled past its lease): the next beat notices.
    current = storage.read_versioned(uri)
    usurper = json.loads(current[0]) | {"owner": "someone-else"}
    assert storage.replace_if(uri, json.dumps(usurper).encode(), current[1])
    _wait(lambda: lock._lost, "the holder noticed")
    with pytest.raises(LockLost, match="taken over"):
        lock.check()
    lock.release()  # leaves the usurper's lock alone
    assert json.loads(storage.read_bytes(uri))["owner"] == "someone-else"


def test_a_sigkilled_driver_on_this_host_is_taken_over_at_once(tmp_path):
    output = str(tmp_path / "out")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom finecap.runtime.lock import OutputLock\n"
         f"OutputLock({output!r}, 600.0, 60.0).acquire()\nprint('held', flush=True)\ntime.sleep(600)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld, match="lease renewed"):
        OutputLock(output, 600.0, 60.0).acquire()  # alive: refused
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    lock = OutputLock(output, 600.0, 60.0).acquire()  # its lease has 600 s to go: the dead pid decides
    assert json.loads(storage.read_bytes(storage.join(output, LOCK_FILE)))["owner"] == lock.owner
    lock.release()


def test_lock_settings_are_checked_naming_the_key():
    with pytest.raises(ConfigError, match=r"^run\.lock_heartbeat_s: must be at most half"):
        load_config(LOCAL_YAML, ["run.lock_lease_s=10", "run.lock_heartbeat_s=6"])
    with pytest.raises(ConfigError, match=r"run\.lock_lease_s"):
        load_config(LOCAL_YAML, ["run.lock_lease_s=1"])


def _wait(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
