"""Duplicates across a whole output: exact (pixel sha256) and near (perceptual hash), removed by a
dataset-level pass after the build (see docs/architecture.md, "Dedup across the whole run")."""

from finecap.dedup.run import DedupSummary, run_dedup
from finecap.dedup.shards import DedupError

__all__ = ["DedupError", "DedupSummary", "run_dedup"]
