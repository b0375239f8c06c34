"""`finecap eval dataset` on synthetic outputs whose truth is exact, and on a damaged copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finecap.cli import main
from finecap.quality.evaluate import evaluate_dataset
from finecap.samples.synth_dataset import write_synth_dataset


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_synth_dataset(str(out), 30, seed=5, heldout_fraction=0.2, size=(160, 120))
    return out / "heldout"


def damaged_copy(split: Path, to: Path) -> Path:
    """The split with every detector box moved off its object and every caption replaced."""
    shutil.copytree(split, to)
    for path in (to / "data").glob("*.parquet"):
        table = pq.read_table(path)
        regions = [[{**r, "bbox": [0.0, 0.0, 0.05, 0.05]} if r["origin"] == "detector" else r for r in row]
                   for row in table.column("regions").to_pylist()]
        captions = [[{**c, "text": "A purple elephant beside two green hexagons."} for c in row]
                    for row in table.column("captions").to_pylist()]
        for name, values in (("regions", regions), ("captions", captions)):
            table = table.set_column(table.column_names.index(name), name,
                                     pa.array(values, table.schema.field(name).type))
        pq.write_table(table, path)
    return to


def test_true_annotations_score_perfectly(synth):
    result = evaluate_dataset(str(synth), str(synth / "truth.coco.json"))
    assert result["images"] == {"truth": 6, "rows_matched": 6, "rows_without_truth": 0, "truth_without_row": 0}
    assert {c["prompt_id"] for c in result["captions"]} == {"synthetic/short@v1", "synthetic/long@v1"}
    for group in result["captions"]:
        assert (group["precision"], group["recall"], group["hallucination_rate"]) == (1.0, 1.0, 0.0)
    assert result["detection"]["ap"] == pytest.approx(1.0) and result["detection"]["instances"] > 0
    assert (result["ocr"]["recall"], result["ocr"]["cer"]) == (1.0, 0.0)
    assert result["region_captions"][0]["category_accuracy"] == 1.0


def test_a_damaged_copy_scores_lower_and_against_shows_the_change(synth, tmp_path, capsys):
    bad = damaged_copy(synth, tmp_path / "bad")
    truth = str(synth / "truth.coco.json")
    assert main(["eval", "dataset", str(bad), "--truth", truth, "--against", str(synth)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])  # the last line is one JSON object
    assert result["detection"]["ap"] == 0.0 and result["against"]["detection"]["ap"] == pytest.approx(1.0)
    changes = {row["metric"]: row for row in result["changes"]}
    assert changes["detection.ap"]["change"] == pytest.approx(-1.0)
    long = next(name for name in changes if name.startswith("captions[") and "long@v1" in name
                and name.endswith(".hallucination_rate"))
    # "elephant" is no truth category (not counted); "hexagons" is, and hallucinated where absent.
    truth = json.loads((synth / "truth.coco.json").read_text())
    hexagon = next(c["id"] for c in truth["categories"] if c["name"] == "hexagon")
    with_hexagon = {a["image_id"] for a in truth["annotations"] if a.get("category_id") == hexagon}
    assert changes[long]["change"] == pytest.approx(1 - len(with_hexagon) / len(truth["images"]))
    assert any(line.startswith("  detection.ap ") and "-1.000" in line for line in out)
    saved = json.loads((bad / "report" / "eval_dataset.json").read_text())
    assert saved["detection"]["ap"] == 0.0  # `finecap diff` compares it with the other side's
    assert "against" not in saved  # only this output's own metrics


def test_rows_without_truth_are_counted_not_scored(synth, tmp_path):
    truth = json.loads((synth / "truth.coco.json").read_text())
    for image in truth["images"]:
        image.pop("key")
        image["file_name"] = "elsewhere/" + image["file_name"].replace("synth", "other")
    (tmp_path / "t.json").write_text(json.dumps(truth))
    result = evaluate_dataset(str(synth), str(tmp_path / "t.json"))
    assert result["images"]["rows_matched"] == 0 and result["images"]["rows_without_truth"] == 6
    assert result["captions"] == [] and result["detection"]["images"] == 0


def test_bad_truth_and_missing_output_are_one_line_errors(synth, tmp_path, capsys):
    (tmp_path / "t.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}]}))
    assert main(["eval", "dataset", str(synth), "--truth", str(tmp_path / "t.json"), "--no-save"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "images[0] lacks width, height" in err
    assert main(["eval", "dataset", str(tmp_path / "none"), "--truth", str(synth / "truth.coco.json")]) == 2
    assert "no committed shard" in capsys.readouterr().err


def test_without_truth_only_the_signals_and_nothing_saved(synth, capsys):
    assert main(["eval", "dataset", str(synth)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["truth"] is None and "detection" not in result
    assert result["duplicate_captions"]["captions"] == 12 and result["signals"]["rows"] == 6
    assert "no --truth: the signals only" in out[0]
    assert not (synth / "report" / "eval_dataset.json").exists()  # a truth score is never replaced
    assert main(["eval", "dataset", str(synth), "--vocabulary", "v.json"]) == 2
    assert "give --truth too" in capsys.readouterr().err
