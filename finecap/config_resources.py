"""`Resources`: where and how wide a stage runs. Its own module so every config section module
(finecap/config.py, finecap/config_quality.py) can use it without importing the other."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Resources:
    """Where and how wide a stage runs; Ray places the stage with these."""

    num_cpus: float = field(default=1.0, metadata={"min": 0})
    num_gpus: float = field(default=0.0, metadata={"min": 0})
    # Actors (model stages) or parallel tasks (CPU stages).
    concurrency: int = field(default=1, metadata={"min": 1})
    # Model stages: let Ray Data grow the actor pool from `concurrency` up to this many actors
    # while there is work and free resources (a cluster's autoscaler adds nodes for them).
    max_concurrency: int | None = field(default=None, metadata={"min": 1})
    batch_size: int = field(default=16, metadata={"min": 1})
