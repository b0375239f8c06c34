"""CPU time and peak RSS of a process tree: a build's driver, Ray's daemons and Ray's workers.

Why a sampler: Ray workers are separate processes (children of the raylet, itself a child of
the driver that started the embedded Ray), so the driver's own counters miss them. A thread
reads every process of the tree every `interval` seconds with psutil; a worker that exits
between two readings keeps its last one, so little CPU time goes unseen.

Roles, from the process title Ray sets (`ray::...`): the root is the `driver`; a worker that
ever ran a `StageActor` is a `model_actor`; other `ray::` workers are `cpu_worker`s (read,
prepare/filter and write tasks, and Ray Data's small bookkeeping actors); everything else
(gcs_server, raylet, agents, log monitor) is `ray_daemon`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import psutil

ROLES = ("driver", "cpu_worker", "model_actor", "ray_daemon")


@dataclass
class ProcStats:
    pid: int
    role: str
    title: str
    cpu_first: float  # CPU seconds at the first reading (0 for processes born after it)
    born: bool  # first seen after the baseline reading
    cpu_last: float = 0.0
    peak_rss: int = 0
    peak_private: int = 0  # RSS less file-backed and shared pages (Ray's object store is shared memory)

    @property
    def cpu(self) -> float:
        return self.cpu_last - self.cpu_first


@dataclass
class TreeSampler:
    """Polls `root` and its descendants; use as a context manager around the work to measure."""

    root: int = field(default_factory=os.getpid)
    interval: float = 0.2
    procs: dict[int, ProcStats] = field(default_factory=dict)
    peak_role_rss: dict[str, int] = field(default_factory=dict)  # peak of the sum over a role's processes
    sampler_cpu: float = 0.0  # the sampling thread's own CPU time (it runs in the root when root is us)
    samples: int = 0

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self._first = True

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        while self._first and self._thread.is_alive():
            time.sleep(0.01)  # the first reading is the baseline: wait for it
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.thread_time()
        while True:
            self.sample()
            self._first = False
            if self._stop.wait(self.interval):
                break
        self.sample()
        self.sampler_cpu = time.thread_time() - started

    def sample(self) -> None:
        try:
            root = psutil.Process(self.root)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        totals: dict[str, int] = {}
        for proc in tree:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_info()
                    title = " ".join(proc.cmdline()[:1]) or proc.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            cpu = times.user + times.system
            stats = self.procs.get(proc.pid)
            if stats is None:
                stats = ProcStats(proc.pid, "", title, cpu if self._first else 0.0, not self._first)
                self.procs[proc.pid] = stats
            stats.role = _role(stats.role, title, proc.pid == self.root)
            stats.title = title if title != "ray::IDLE" else stats.title
            stats.cpu_last = cpu
            stats.peak_rss = max(stats.peak_rss, memory.rss)
            stats.peak_private = max(stats.peak_private, memory.rss - memory.shared)
            totals[stats.role] = totals.get(stats.role, 0) + memory.rss
        for role, total in totals.items():
            self.peak_role_rss[role] = max(self.peak_role_rss.get(role, 0), total)
        self.samples += 1

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds spent while sampling, per role (the sampler's own time taken off the root)."""
        out = dict.fromkeys(ROLES, 0.0)
        for stats in self.procs.values():
            out[stats.role] += stats.cpu
        if self.root == os.getpid():
            out["driver"] -= self.sampler_cpu
        return out

    def peak_rss_by_role(self) -> dict[str, dict]:
        """Per role: the largest single process's peak RSS (and private part) and the peak of the
        role's total (MiB)."""
        out = {}
        for role in ROLES:
            members = [s for s in self.procs.values() if s.role == role]
            if members:
                out[role] = {
                    "processes": len(members),
                    "max_process_mib": round(max(s.peak_rss for s in members) / 2**20, 1),
                    "max_process_private_mib": round(max(s.peak_private for s in members) / 2**20, 1),
                    "total_mib": round(self.peak_role_rss.get(role, 0) / 2**20, 1),
                }
        return out


def _role(previous: str, title: str, is_root: bool) -> str:
    if is_root:
        return "driver"
    if previous == "model_actor" or "StageActor" in title:
        return "model_actor"
    if title.startswith("ray::") and not title.endswith("Agent"):  # DashboardAgent, RuntimeEnvAgent
        return "cpu_worker"
    return previous or "ray_daemon"
