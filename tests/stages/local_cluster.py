"""A two-node Ray cluster on 127.0.0.1 for tests, started with `ray start` and stopped by PID.

`ray stop` would kill every Ray process on the machine by name (other people's too), so this
records the processes its own `ray start` calls create (their command lines name this cluster's
temp dir) and, at the end, stops them and every process they spawned (the raylets' workers).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        found[int(pid)] = (parent, cmdline)
    return found


def raylet_of(pid: int) -> int | None:
    """The raylet a worker process belongs to (its nearest `raylet` ancestor), i.e. its node."""
    processes = _processes()
    while pid in processes:
        parent, cmdline = processes[pid]
        if "/raylet/raylet " in cmdline or cmdline.split(" ", 1)[0].endswith("/raylet"):
            return pid
        pid = parent
    return None


class LocalCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1):
        self.nodes, self.cpus = nodes, cpus_per_node
        self.temp_dir = tempfile.mkdtemp(prefix="fc-cl-")  # short: Ray's socket paths are bounded
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("RAY_ADDRESS", None)
        self.pids: set[int] = set()

    def __enter__(self) -> LocalCluster:
        common = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus), "--temp-dir", self.temp_dir,
                  "--object-store-memory", str(300 * 2**20), "--disable-usage-stats"]
        commands = [["--head", "--port", str(self.port), "--include-dashboard=false"]]
        commands += [["--address", self.address]] * (self.nodes - 1)
        try:
            for extra in commands:
                proc = subprocess.run([str(BIN / "ray"), "start", *extra, *common], env=self.env,
                                      capture_output=True, text=True, timeout=180)
                self._record()
                if proc.returncode:
                    raise RuntimeError(f"ray start failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
                                       f"{proc.stderr[-2000:]}")
        except BaseException:
            self._record()
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _record(self) -> None:
        self.pids |= {pid for pid, (_, cmd) in _processes().items() if self.temp_dir in cmd}

    def raylets(self) -> set[int]:
        processes = _processes()
        return {pid for pid in self.pids if pid in processes and raylet_of(pid) == pid}

    def _ours(self) -> set[int]:
        """Recorded processes and everything they spawned (workers), still alive."""
        processes = _processes()
        ours = {pid for pid in self.pids if pid in processes}
        grew = True
        while grew:
            children = {pid for pid, (parent, _) in processes.items() if parent in ours} - ours
            ours |= children
            grew = bool(children)
        return ours

    def stop(self) -> None:
        # gcs_server and raylet may ignore SIGTERM for >8 s: a short grace, then SIGKILL.
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            targets = self._ours()
            for pid in targets:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while self._ours() and time.monotonic() < deadline:
                time.sleep(0.2)
        subprocess.run(["rm", "-rf", self.temp_dir], check=False)

    def alive(self) -> set[int]:
        return self._ours()
