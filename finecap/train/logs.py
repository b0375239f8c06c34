"""Training logs that survive a resume: the CSV of metrics and the per-rank trace of consumed keys.

A killed run may have logged steps after its last checkpoint; on resume those lines are dropped,
because the resumed run trains those steps again.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """LR multiplier of step s: linear warmup, then cosine decay to `min_ratio`."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _truncate_csv(path: Path, after_step: int) -> None:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
        fields = list(rows[0].keys()) if rows else []
    kept = [r for r in rows if int(r["step"]) <= after_step]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if fields:
            writer.writeheader()
            writer.writerows(kept)


class CsvLog:
    """step, loss, lr, throughput and stage metrics, one row per optimizer step."""

    def __init__(self, path: Path, fields: list[str], resume_step: int) -> None:
        self.path, self.fields = path, fields
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step and path.exists() and path.stat().st_size:
            _truncate_csv(path, resume_step)
        elif path.exists():
            path.unlink()
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=fields)
        if not path.stat().st_size:
            self._writer.writeheader()

    def write(self, row: dict) -> None:
        self._writer.writerow({k: _fmt(row.get(k)) for k in self.fields})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class Trace:
    """JSON lines {"step": s, "keys": [...]} of the rows one rank trained on."""

    def __init__(self, path: Path, resume_step: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step and path.exists():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
        path.write_text("".join(line + "\n" for line in kept))
        self._file = path.open("a")

    def write(self, step: int, keys: list[str]) -> None:
        self._file.write(json.dumps({"step": step, "keys": keys}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_trace(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]
