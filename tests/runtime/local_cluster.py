"""A real Ray cluster on 127.0.0.1 for tests: `ray start --head`, stopped by killing only what it started."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psutil

from tests.engines.conftest import free_port

RAY = str(Path(sys.executable).parent / "ray")


@contextmanager
def local_cluster(num_cpus: int = 2):
    """Yields {"address", "dashboard", "env"}; on exit kills every process using its temp dir."""
    temp_dir = tempfile.mkdtemp(prefix="fc-cl-", dir="/tmp")  # short: Ray socket paths are bounded
    port, dash = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           # jobs run the first `python` on the PATH of the process that started the head
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    cmd = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", str(num_cpus), "--temp-dir", temp_dir, "--include-dashboard", "true",
           "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--disable-usage-stats"]
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=120)
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}", "env": env,
               "temp_dir": temp_dir}
    finally:
        stop_cluster(temp_dir)


def processes_of(temp_dir: str) -> list[psutil.Process]:
    from finecap.runtime.leftovers import processes_using

    return processes_using(Path(temp_dir))


def stop_cluster(temp_dir: str) -> None:
    """Kill only the processes holding files in this cluster's temp dir (never `ray stop`)."""
    from finecap.runtime.leftovers import end_session

    end_session(temp_dir, grace_s=0)
