"""`finecap build --from OLD --output NEW`: a new output from an earlier one, OLD left untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from finecap.diff import diff_outputs
from finecap.lineage import show_log
from finecap.validate import validate_output
from tests.conftest import LOCAL_YAML
from tests.runtime.test_runner import _run

pytestmark = pytest.mark.slow
# Prepare and filter only (no models): builds take seconds, the rebuild logic is the same.
CPU_ONLY = ["dedup.enabled=false", "caption.enabled=false", "phrases.enabled=false", "detect.enabled=false",
            "ocr.enabled=false", "regions.enabled=false", "filter.min_short_side=40", "filter.min_blur=null",
            "filter.max_brightness=null", "filter.max_clipped=null", "filter.max_saturation=null",
            "source.shard_size=4"]


def _args(*overrides: str) -> list[str]:
    return [a for item in CPU_ONLY + list(overrides) for a in ("--set", item)]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_build_from_an_earlier_output_redecides_only_the_changed_filter(image_folder, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    first = _run(["build", "--config", str(LOCAL_YAML), "--input", str(image_folder), "--output", str(old),
                  *_args("filter.max_aspect_ratio=1.6")], tmp_path)
    assert "filter/bad_aspect_ratio=6" in first.stdout and "prepare/decode_error=1" in first.stdout
    before = _snapshot(old)

    # Exact dedup on: the pass after the build checks the config hash the build recorded, which
    # roots at OLD's source fingerprint, not at this config's (it once failed on exactly that).
    proc = _run(["build", "--config", str(LOCAL_YAML), "--from", str(old), "--output", str(new),
                 *_args("filter.max_aspect_ratio=3", "dedup.enabled=true", "dedup.near=false")], tmp_path)
    assert "recompute filter: filter.max_aspect_ratio: 1.6 -> 3.0" in proc.stdout
    assert "\ndedup: 0 exact and 0 near duplicates" in proc.stdout
    assert "6 rejected rows decided again" in proc.stdout
    assert "10 rows written, 1 rejected" in proc.stdout  # the decode error stays (prepare unchanged)
    assert _snapshot(old) == before  # OLD untouched
    assert validate_output(str(new)).ok
    (version,) = json.loads(show_log(str(new), as_json=True))["versions"]
    assert version["parent"] == {"output": str(old), "version": "000001"}
    assert version["recomputed"] == {"filter": ["filter.max_aspect_ratio: 1.6 -> 3.0"]}
    moved = diff_outputs(str(old), str(new))["rows"]["fate_changed"]["rejected_to_kept"]
    assert list(moved) == ["filter/bad_aspect_ratio"] and moved["filter/bad_aspect_ratio"]["count"] == 6
