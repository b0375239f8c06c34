"""A balanced build end to end (`balance.enabled`): two passes, region captions only for the
selected regions, at most `cap` captioned per category, and a rerun that recomputes nothing."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from finecap.balance_selection import Selection
from finecap.dataset import committed_shards, read_data
from finecap.validate import validate_output
from tests.conftest import LOCAL_YAML
from tests.runtime.cli_run import run_finecap

CAP = 2


def test_pass_one_runs_again_only_for_a_new_shard_or_new_region_inputs(tmp_path):
    from finecap.balance import region_inputs
    from finecap.runtime.balanced_build import _regions_inputs_done

    prints = {"source": "sha256:s", "detect": "sha256:d", "ocr": "sha256:o", "regions": "sha256:r"}
    (tmp_path / "_manifest").mkdir()
    for shard in ("part-000000", "part-000001"):
        (tmp_path / "_manifest" / f"{shard}.json").write_text(json.dumps({"shard": shard, "fingerprints": prints}))
    expected = region_inputs({"fingerprints": {**prints, "regions": "sha256:another region prompt"}})
    assert _regions_inputs_done(str(tmp_path), ["part-000000", "part-000001"], expected)
    assert not _regions_inputs_done(str(tmp_path), ["part-000000", "part-000001", "part-000002"], expected)
    changed = region_inputs({"fingerprints": {**prints, "detect": "sha256:another threshold"}})
    assert not _regions_inputs_done(str(tmp_path), ["part-000000"], changed)


def test_the_selection_is_keyed_by_every_stage_the_regions_read():
    """balance.py (which may not import the stages) names what the regions stage reads itself."""
    from finecap.balance import REGION_INPUTS
    from finecap.config import load_config
    from finecap.stages.regions import RegionsStage

    assert set(RegionsStage.inputs(load_config(LOCAL_YAML))) == set(REGION_INPUTS)


@pytest.mark.slow
def test_a_balanced_build_captions_the_selection_only_and_a_rerun_does_nothing(tmp_path):
    from finecap.samples.source import write_sample_source

    source = write_sample_source(tmp_path / "source", n_scenes=6, seed=3, include_photos=False)
    home, out = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    args = ["build", "--config", str(LOCAL_YAML), "--input", str(source), "--output", str(out),
            "--set", "balance.enabled=true", "--set", f"balance.cap={CAP}", "--set", "balance.keep_below=0",
            "--set", "regions.caption_ocr_regions=false"]
    first = run_finecap(args, home)
    assert "pass 1 of 2" in first.stdout and "pass 2 of 2" in first.stdout
    summary = json.loads((out / "balance" / "summary.json").read_text())
    assert summary["capped_categories"] >= 1 and summary["origins"] == ["detector"]

    selection = Selection(str(out / "balance"))
    captioned, unselected = Counter(), 0
    for shard in committed_shards(str(out)):
        manifest = shard.manifest
        assert manifest["rows_in"] == manifest["rows_written"] + manifest["rows_rejected"]
        for row in read_data(shard, ["key", "regions"]).to_pylist():
            kept = selection.kept(shard.shard_id, row["key"])
            for index, region in enumerate(row["regions"] or []):
                if region["origin"] == "ocr":
                    assert region["caption"] == region["ocr_text"]  # exempt: its own text
                elif index not in kept:
                    unselected += 1
                    assert region["caption"] is None
                elif region["caption"] is not None:
                    captioned[region["category"]] += 1
    assert unselected and captioned and max(captioned.values()) <= CAP
    assert validate_output(str(out)).ok

    again = run_finecap(args, home)
    assert "pass 1 of 2" not in again.stdout and f"balanced {out}:" not in again.stdout  # nor a new selection
    assert "0/0 shards committed" in again.stdout, again.stdout
    log = run_finecap(["log", str(out)], home).stdout
    assert "version 000002" in log and "recomputed regions" in log
