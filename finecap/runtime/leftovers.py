"""Clean up after embedded Ray sessions whose driver died without shutting Ray down.

When a driver is SIGKILLed, Ray's GCS, raylet and workers die with it, but its dashboard and
runtime-env agents can outlive it, orphaned. Every embedded session writes its driver's pid in
its temp dir; the next run reaps sessions whose driver is gone: it kills the processes that
still hold files in that dir and deletes the dir.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import psutil

log = logging.getLogger(__name__)
PREFIX = "finecap-ray-"
OWNER_FILE = "driver.pid"


def mark_owner(temp_dir: str, pid: int) -> None:
    (Path(temp_dir) / OWNER_FILE).write_text(str(pid))


def _owner_dead(session_dir: Path) -> bool:
    """True only when the session names its driver and that process is gone."""
    try:
        pid = int((session_dir / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return False  # not ours to judge (another tool, or a session still starting)
    return not psutil.pid_exists(pid)


def processes_using(directory: Path) -> list[psutil.Process]:
    """Processes with a file, cwd or argument inside `directory`."""
    prefix = str(directory.resolve())
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
            continue  # already dead (awaiting its parent), or this very driver
        try:
            paths = [f.path for f in proc.open_files()] + [proc.cwd()] + (proc.info["cmdline"] or [])
        except (psutil.Error, OSError):
            continue
        if any(str(p).startswith(prefix) for p in paths):
            found.append(proc)
    return found


def _kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)


def end_session(temp_dir: str, grace_s: float = 5.0) -> None:
    """After `ray.shutdown()`: give Ray's agents a moment to exit, kill any that stay, remove the dir."""
    deadline = time.monotonic() + grace_s
    while processes_using(Path(temp_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    _kill_all(processes_using(Path(temp_dir)))
    shutil.rmtree(temp_dir, ignore_errors=True)


def reap_stale_sessions(base: str) -> int:
    """Kill leftovers of dead embedded sessions under `base`; return how many processes were killed."""
    killed = 0
    for session_dir in Path(base).glob(f"{PREFIX}*"):
        if not session_dir.is_dir() or not _owner_dead(session_dir):
            continue
        leftovers = processes_using(session_dir)
        _kill_all(leftovers)
        killed += len(leftovers)
        shutil.rmtree(session_dir, ignore_errors=True)
        log.warning("removed a dead FineCap Ray session %s (%d leftover processes)", session_dir, len(leftovers))
    return killed
