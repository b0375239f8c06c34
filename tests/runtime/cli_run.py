"""`finecap ...` as a user runs it: a subprocess with its own HOME, no Ray address inherited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

FINECAP = [sys.executable, "-m", "finecap.cli"]


def run_finecap(args, home: Path, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(FINECAP + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args[0]} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
