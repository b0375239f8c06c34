"""The crash journal: which rows a stage worker was working on when it died.

Protocol. Before a stage is called on a piece of a batch, the worker writes one small record
(its host, PID and process start time, the piece's keys) to a node-local folder; it deletes the
record when the call returns or raises. A record that outlives its writer is the evidence of a
crash (segfault, OOM kill, the watchdog's exit): when Ray retries the batch in a fresh worker,
that worker reads the records of its batch's keys and isolates the rows that killed its
predecessor (runtime/isolation.py). The watchdog marks a record `timeout` before it ends a
worker, so a hang becomes a `stage_timeout` reject rather than a `worker_crash`.

Records are node-local (the folder is on the worker's own disk): Ray retries a crashed task or
restarts an actor on the node it ran on unless that node is gone, and a retry on another node
simply sees no records and runs the batch whole again (bounded by `run.max_worker_restarts`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)
# Exit status of a worker the watchdog ends (Ray reports it as a worker death).
WATCHDOG_EXIT = 70


@dataclass(frozen=True)
class DeadPiece:
    """A piece whose worker died while working on it."""

    path: Path
    keys: frozenset
    timed_out: bool


def _process_start(pid: int) -> float | None:
    """When the live process `pid` started; None when there is none (a zombie counts as dead:
    Ray's raylet reaps a crashed worker only after the retry may have begun)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class CrashJournal:
    """One stage's records under `root/<stage>/` on this node."""

    def __init__(self, root: str, stage: str):
        self.folder = Path(root) / stage
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started = _process_start(self.pid)

    def begin(self, keys: list[str]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.pid}-{uuid.uuid4().hex}.json"
        record = {"host": self.host, "pid": self.pid, "started": self.started, "keys": keys, "timeout": False}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)  # whole or absent: a crash mid-write leaves no half record
        return path

    @staticmethod
    def end(path: Path) -> None:
        path.unlink(missing_ok=True)

    @staticmethod
    def mark_timeout(path: Path) -> None:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        record["timeout"] = True
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    def dead_pieces(self, keys: set[str]) -> list[DeadPiece]:
        """Records of dead workers of this host whose keys all lie in `keys`."""
        if not self.folder.is_dir():
            return []
        dead = []
        for path in self.folder.glob("*.json"):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # removed meanwhile by its (live) writer
            if record.get("host") != self.host or self._alive(record):
                continue
            piece = frozenset(record["keys"])
            if piece and piece <= keys:
                dead.append(DeadPiece(path, piece, bool(record.get("timeout"))))
        return dead

    @staticmethod
    def _alive(record: dict) -> bool:
        started = _process_start(int(record["pid"]))
        return started is not None and (record.get("started") is None or abs(started - record["started"]) < 1.0)


class Watchdog:
    """Ends this worker when one stage call outlives its deadline (a hung engine or decoder).

    A thread cannot be stopped from outside and a native call cannot be interrupted, so the
    only sure way out of a hang is the process: the record is marked `timeout`, the worker
    exits, and Ray retries the batch in a fresh one that isolates the hanging rows.
    """

    _lock = threading.Lock()
    _thread: threading.Thread | None = None
    _armed: dict[int, tuple[float, Path]] = {}

    @classmethod
    def arm(cls, seconds: float, record: Path) -> None:
        with cls._lock:
            cls._armed[threading.get_ident()] = (time.monotonic() + seconds, record)
            if cls._thread is None:
                cls._thread = threading.Thread(target=cls._watch, name="finecap-watchdog", daemon=True)
                cls._thread.start()

    @classmethod
    def disarm(cls) -> None:
        with cls._lock:
            cls._armed.pop(threading.get_ident(), None)

    @classmethod
    def _watch(cls) -> None:
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            with cls._lock:
                late = [record for deadline, record in cls._armed.values() if deadline <= now]
            if late:
                for record in late:
                    CrashJournal.mark_timeout(record)
                log.error("a stage call ran past run.batch_timeout_s; ending this worker so the batch is isolated")
                os._exit(WATCHDOG_EXIT)
