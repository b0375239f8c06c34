"""benchmarks/rebuild.py: its prompt change touches the regions fingerprint only, and a tiny run
(three builds on one shard: minutes, each build starts Ray and its models) passes its checks."""

from __future__ import annotations

from pathlib import Path

from benchmarks import rebuild
from finecap.config import load_config
from finecap.stages.fingerprints import pipeline_prints

REPO = Path(__file__).resolve().parents[2]


def test_the_changed_pipeline_changes_the_regions_fingerprint_only(tmp_path):
    before = pipeline_prints(load_config(REPO / "pipelines/local.yaml", rebuild.OVERRIDES))
    after = pipeline_prints(load_config(rebuild.changed_pipeline(tmp_path), rebuild.OVERRIDES))
    changed = [name for name in before if before[name].fingerprint != after[name].fingerprint]
    assert changed == [rebuild.CHANGED]
    assert (REPO / "pipelines" / rebuild.REGION_PROMPT).read_text().count(rebuild.ADDED_SENTENCE) == 0
