"""The real pipeline end to end: `finecap build` on an embedded Ray with the tiny VLM in vLLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LOCAL_YAML
from tests.runtime.cli_run import run_finecap

pytestmark = pytest.mark.slow
_run = run_finecap


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One build of 16 sample images, shared by the tests below (engine start dominates)."""
    from finecap.samples.source import write_sample_source

    root = tmp_path_factory.mktemp("build")
    source = write_sample_source(root / "source", n_scenes=14, seed=3)
    home = root / "home"
    home.mkdir()
    out = root / "out"
    args = ["build", "--config", str(LOCAL_YAML), "--input", str(source), "--output", str(out), "--limit", "16"]
    first = _run(args, home)
    return {"args": args, "out": out, "home": home, "first": first, "source": source}


def test_build_validates_and_accounts_for_every_row(built):
    assert "rows written" in built["first"].stdout
    proc = _run(["validate", str(built["out"])], built["home"])
    assert proc.stdout.startswith("OK:"), proc.stdout
    assert "16 rows" in proc.stdout or "rejects" in proc.stdout


def test_eval_scores_the_build_against_the_sample_truth_and_the_signals_flag_the_noise(built):
    """The tiny random models write noise: they must score near zero and be flagged, while real
    PP-OCR reads the drawn words (its word recall measured against the scenes' truth)."""
    import json

    truth = built["source"] / "truth.coco.json"
    proc = _run(["eval", "dataset", str(built["out"]), "--truth", str(truth)], built["home"])
    result = json.loads(proc.stdout.strip().splitlines()[-1])  # the last line is one JSON object
    assert "global captions" in proc.stdout and "AP50" in proc.stdout
    images = result["images"]
    # 14 scenes and 2 of the bundled photos (--limit 16); photos have no truth.
    assert images["rows_matched"] + images["truth_without_row"] == images["truth"] == 14
    assert images["rows_without_truth"] == 16 - images["rows_matched"]
    captioners = {c["model"] for c in result["captions"]}
    assert captioners <= {"tiny:vlm-a", "tiny:vlm-b"} and captioners
    assert all(c["captions"] > 0 and (c["f1"] or 0.0) < 0.3 for c in result["captions"])
    det = result["detection"]
    assert det["model"].startswith("tiny:gdino@") and det["instances"] > 0 and 0.0 <= det["ap"] < 0.3
    assert result["ocr"]["model"].startswith("PP-OCRv4") and result["ocr"]["recall"] > 0.5
    flagged = result["signals"]
    assert flagged["rows_with_signals"] == 16 and flagged["rows_flagged"] > 0
    saved = json.loads((built["out"] / "report" / "eval_dataset.json").read_text())
    assert saved["detection"]["ap"] == det["ap"]  # where `finecap diff` compares report metrics


def test_output_loads_in_datasets_with_pil_images_and_provenance(built):
    import datasets
    from PIL import Image

    ds = datasets.load_dataset("parquet", data_files=str(built["out"] / "data" / "*.parquet"), split="train")
    assert len(ds) == 16
    row = ds[0]
    assert isinstance(row["image"], Image.Image)
    caption = row["captions"][0]
    assert caption["model"] == "tiny:vlm-a" and caption["model_revision"].startswith("sha256:")
    assert caption["prompt_id"] == "global_detailed/v1" and caption["num_tokens"] > 0
    assert row["provenance"]["config_hash"].startswith("sha256:")


def test_sample_build_has_detector_and_ocr_regions_with_region_captions(built):
    import json
    import re

    import pyarrow.parquet as pq

    table = pq.read_table(built["out"] / "data", columns=["key", "regions"])
    regions = [r for row in table.column("regions").to_pylist() for r in row]
    by_origin = {o: [r for r in regions if r["origin"] == o] for o in ("detector", "ocr")}
    assert by_origin["detector"] and by_origin["ocr"], {o: len(v) for o, v in by_origin.items()}
    assert all(r["ocr_text"] for r in by_origin["ocr"])
    for found in by_origin.values():
        captioned = [r for r in found if r["caption"]]
        assert len(captioned) >= 0.8 * len(found)  # the tiny random VLM now and then writes nothing
        assert all(re.fullmatch(r"(tiny:vlm-a|PP-OCRv4)@\S+", r["caption_model"]) for r in captioned)
    manifest = json.loads(next((built["out"] / "_manifest").glob("*.json")).read_text())
    assert manifest["prompts"]["region_context/v2"].startswith("sha256:")


def test_no_files_are_left_in_home(built):
    leftovers = [str(p.relative_to(built["home"])) for p in built["home"].rglob("*")]
    assert leftovers == []


def test_rerun_skips_committed_shards(built):
    proc = _run(built["args"], built["home"])
    assert "0/0 shards committed (2 already done)" in proc.stdout


def test_misspelt_key_fails_before_any_work(tmp_path):
    out = tmp_path / "never"
    proc = _run(["build", "--config", str(LOCAL_YAML), "--output", str(out), "--set", "source.shard_sise=4"],
                tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "config error: unknown key 'source.shard_sise' (did you mean 'source.shard_size'?)"
    )
    assert not out.exists()


def _committed(out: Path) -> dict:
    from finecap.dataset import committed_shards, read_data

    return {s.shard_id: (s.manifest, read_data(s, ["key", "image", "captions", "regions"])) for s in committed_shards(str(out))}


def test_a_changed_region_setting_rebuilds_only_the_regions_stage(built):
    """Last in this module: it makes a second version of the shared output. The quality stage
    reads the regions, so it runs again too, with the phrases it reads (not kept in the data)."""
    before = _committed(built["out"])
    proc = _run(built["args"] + ["--set", "regions.captioner.max_tokens=9"], built["home"])
    assert "recompute regions: regions.captioner.max_tokens: 24 -> 9" in proc.stdout
    assert "recompute quality: regions changed" in proc.stdout
    assert "keep prepare, filter, caption, detect, ocr" in proc.stdout
    after = _committed(built["out"])
    assert set(after) == set(before)
    for shard, (manifest, rows) in after.items():
        old_manifest, old_rows = before[shard]
        # No fetch, prepare, caption, detect or OCR.
        assert set(manifest["stage_seconds"]) == {"read", "regions", "phrases", "quality"}
        assert (manifest["version"], old_manifest["version"]) == ("000002", "000001")
        assert manifest["files"] != old_manifest["files"]  # a new version never overwrites the old files
        for column in ("key", "image", "captions"):
            assert rows.column(column).equals(old_rows.column(column)), column  # byte-identical
        boxes = [[r["bbox"] for r in row] for row in rows.column("regions").to_pylist()]
        assert boxes == [[r["bbox"] for r in row] for row in old_rows.column("regions").to_pylist()]
    from finecap.lineage import show_log
    from finecap.validate import validate_output

    assert validate_output(str(built["out"])).ok
    log = show_log(str(built["out"]))
    assert log.index("version 000002") < log.index("version 000001")
    assert "parent 000001" in log and "recomputed regions" in log
