"""What both evaluations need: a checkpoint's folder, the config it was trained with, its meta."""

from __future__ import annotations

from pathlib import Path

from finecap.train.checkpoint import latest_checkpoint, read_state
from finecap.train.config import TrainConfig
from finecap.typed_config import build


def checkpoint_config(checkpoint: str | Path, stage: str) -> tuple[Path, TrainConfig, dict]:
    """Accepts a checkpoint folder, a stage folder (its latest checkpoint) or a run output (OUT/stage)."""
    path = Path(checkpoint)
    candidates = [path if (path / "state.json").exists() else None, latest_checkpoint(path),
                  latest_checkpoint(path / stage)]
    found = next((c for c in candidates if c is not None), None)
    if found is None:
        raise FileNotFoundError(f"no {stage} checkpoint at {checkpoint}")
    state = read_state(found)
    if state["stage"] != stage:
        raise ValueError(f"{found} is a {state['stage']} checkpoint; this evaluation needs {stage}")
    return found, build(TrainConfig, state["config"]), state["meta"]
