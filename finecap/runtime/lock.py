"""The output lock: one driver (build or dedup) writes an output at a time, on any store.

Protocol (`OUT/_lock.json`, a lease object):
1. Take: create the file only if absent (local: hard link of a written temp file; S3: PUT with
   `If-None-Match: *`). It names a random owner id (also the run's staging id), host, pid, start
   time, the heartbeat time and the lease.
2. Hold: a heartbeat thread rewrites it every `run.lock_heartbeat_s`, conditionally on the version
   it last wrote (local: content hash checked under flock; S3: `If-Match: ETAG`); a failed
   condition means another driver took it over, and the holder stops before its next commit.
3. Refuse: a lock renewed within its lease stops a second driver at start, in one line.
4. Take over: a lock whose heartbeat is older than its lease (or whose driver's pid is gone on
   this same host and boot: at once) is replaced conditionally on the version read, so of two
   drivers taking over at once exactly one wins; release deletes it conditionally the same way.
Stores without conditional writes fall back to write, wait `storage.SETTLE_S`, read back and
compare the owner: the weaker guarantee (two drivers inside the settle window may both start).
Staleness compares the holder's wall clock with the reader's: clocks must agree to well within
the lease.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import psutil

from finecap import storage
from finecap.runtime.resume import ResumeRefused

log = logging.getLogger(__name__)

LOCK_FILE = "_lock.json"
TAKE_ATTEMPTS = 5  # each failed attempt means another driver changed the lock meanwhile


class LockHeld(ResumeRefused):
    """Another live driver holds the output."""


class LockLost(RuntimeError):
    """This driver's lock was taken over (its lease lapsed); it must stop writing."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def holder_line(output: str, record: dict, now: float) -> str:
    verb = "deduplicated" if record.get("command") == "dedup" else "built"
    return (
        f"{output} is being {verb} by {record.get('host')}:{record.get('pid')} since {record.get('created')}, "
        f"lease renewed {max(0.0, now - record.get('heartbeat', 0)):.0f}s ago "
        f"(stale after {record.get('lease_s', 0):.0f}s; lock {LOCK_FILE})"
    )


def stale_reason(record: dict, now: float) -> str | None:
    """Why the lock in `record` may be taken over, or None while its holder is alive."""
    age = now - float(record.get("heartbeat", 0))
    if age > float(record.get("lease_s", 0)):
        return f"its lease lapsed {age:.0f}s ago"
    if record.get("host") == socket.gethostname() and record.get("boot") and record.get("boot") == _boot_id():
        try:
            proc = psutil.Process(int(record["pid"]))
            gone = proc.status() == psutil.STATUS_ZOMBIE or abs(proc.create_time() - record["pid_started"]) > 1
        except (psutil.NoSuchProcess, KeyError, ValueError):
            gone = True
        if gone:
            return f"its driver (pid {record.get('pid')}) is gone"
    return None


class OutputLock:
    """The lease on one output: `acquire()`, `check()` before each write that commits, `release()`."""

    def __init__(self, output: str, lease_s: float, heartbeat_s: float, command: str = "build"):
        self.output = output
        self.uri = storage.join(output, LOCK_FILE)
        self.owner = uuid.uuid4().hex
        self.lease_s, self.heartbeat_s, self.command = lease_s, heartbeat_s, command
        self.created = time.time()
        self._token: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, now: float) -> bytes:
        me = psutil.Process()
        return json.dumps({
            "owner": self.owner, "command": self.command, "host": socket.gethostname(), "boot": _boot_id(),
            "pid": os.getpid(), "pid_started": me.create_time(), "created": _iso(self.created),
            "heartbeat": now, "heartbeat_at": _iso(now), "lease_s": self.lease_s,
        }, indent=2).encode()

    def acquire(self) -> OutputLock:
        for _ in range(TAKE_ATTEMPTS):
            current = storage.read_versioned(self.uri)
            if current is None:
                self._token = storage.create_exclusive(self.uri, self.record(time.time()))
            else:
                self._token = self._take_over(*current)
            if self._token:
                self._thread = threading.Thread(target=self._beat, name="finecap-lock", daemon=True)
                self._thread.start()
                return self
        raise LockHeld(f"{self.output}: the lock {LOCK_FILE} changed hands {TAKE_ATTEMPTS} times while "
                       "this run tried to take it; another driver is starting")

    def _take_over(self, data: bytes, token: str) -> str | None:
        now = time.time()
        try:
            held = json.loads(data)
        except ValueError:
            held = None
        if not isinstance(held, dict) or "heartbeat" not in held:
            raise LockHeld(f"{self.uri} is not a FineCap lock (unreadable); remove it if no build is running")
        why = stale_reason(held, now)
        if why is None:
            raise LockHeld(holder_line(self.output, held, now))
        taken = storage.replace_if(self.uri, self.record(now), token)
        if taken:
            log.warning("took over the lock of %s from %s:%s: %s", self.output, held.get("host"), held.get("pid"), why)
        return taken

    def _beat(self) -> None:
        last_ok = time.time()
        while not self._stop.wait(self.heartbeat_s):
            now = time.time()
            try:
                token = storage.replace_if(self.uri, self.record(now), self._token)
                if token is None:  # lost the condition, or the store answered badly: look
                    current = storage.read_versioned(self.uri)
                    mine = current is not None and json.loads(current[0]).get("owner") == self.owner
                    if not mine:
                        self._lost = f"{self.uri} was taken over by another driver"
                        log.error("%s: stopping before the next commit", self._lost)
                        return
                    token = storage.replace_if(self.uri, self.record(now), current[1])
                if token:
                    self._token, last_ok = token, now
            except Exception as exc:  # a flaky store: keep trying until the lease would lapse
                log.warning("lock heartbeat on %s failed: %s", self.uri, exc)
            if now - last_ok > self.lease_s:
                self._lost = f"{self.uri}: no heartbeat for {now - last_ok:.0f}s, over the lease"
                log.error("%s: stopping before the next commit", self._lost)
                return

    def check(self) -> None:
        """Raise LockLost if another driver may own the output now."""
        if self._lost:
            raise LockLost(self._lost)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._token and not self._lost:
            current = storage.read_versioned(self.uri)
            if current is not None and json.loads(current[0]).get("owner") == self.owner:
                storage.remove_if(self.uri, current[1])
        self._token = None


@contextlib.contextmanager
def output_lock(output: str, run_config, command: str = "build"):
    """Hold the output's lock for the block; released on any exit, KeyboardInterrupt included."""
    lock = OutputLock(output, run_config.lock_lease_s, run_config.lock_heartbeat_s, command).acquire()
    try:
        yield lock
    finally:
        lock.release()
