"""`finecap plan --selection / --regions-per-image`: the regions stage's VLM requests per image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from finecap.cli import main
from finecap.plan import Rates
from finecap.plan_inputs import PlanInputError, apply_regions, read_selection, regions_override
from finecap.typed_config import build
from tests.test_plan import EXAMPLE

# 320 detector regions kept out of 100 rows: 3.2 VLM requests per image; the 50 OCR regions take their text.
SUMMARY = {"output": "OUT", "selection": "OUT/balance", "cap": 10, "seed": 0, "origins": ["detector"],
           "images": 100, "selected_by_origin": {"detector": 320, "ocr": 50}}


def _selection(tmp_path: Path, **changes) -> Path:
    folder = tmp_path / "out" / "balance"
    folder.mkdir(parents=True)
    summary = {k: v for k, v in {**SUMMARY, **changes}.items() if v is not None}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _rates(tmp_path: Path) -> Path:
    path = tmp_path / "rates.yaml"
    path.write_text(yaml.safe_dump(EXAMPLE))
    return path


def test_selection_gives_selected_detector_regions_per_image(tmp_path):
    folder = _selection(tmp_path)
    found = read_selection(str(folder))
    assert found.value == pytest.approx(3.2) and "320 selected detector regions / 100 images" in found.source
    assert read_selection(str(folder.parent)).value == pytest.approx(3.2)  # OUT itself: its balance/


def test_override_replaces_only_the_regions_items_per_image():
    rates = build(Rates, EXAMPLE)
    changed = apply_regions(rates, regions_override(None, 1.5), "--regions-per-image")
    assert changed.stages["regions"].items_per_image == 1.5 and rates.stages["regions"].items_per_image == 3
    assert changed.stages["caption"] == rates.stages["caption"]
    assert apply_regions(rates, regions_override(None, None), "--selection") is rates


@pytest.mark.parametrize(("changes", "message"), [
    ({"images": None}, "has no images (written by an older"),
    ({"selected_by_origin": None}, "has no selected_by_origin"),
    ({"origins": ["ocr"]}, "did not balance detector regions (origins: ocr)"),
    ({"images": 0}, "counts 0 images"),
])
def test_a_selection_that_cannot_give_the_figure_is_one_line_naming_the_flag(tmp_path, changes, message):
    with pytest.raises(PlanInputError) as err:
        read_selection(str(_selection(tmp_path, **changes)))
    assert str(err.value).startswith("--selection: ") and message in str(err.value) and "\n" not in str(err.value)


def test_missing_and_unreadable_summaries_name_the_flag(tmp_path):
    with pytest.raises(PlanInputError, match=r"^--selection: no summary.json under"):
        read_selection(str(tmp_path))
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(PlanInputError, match=r"^--selection: .* is not valid JSON"):
        read_selection(str(tmp_path))


def test_cli_selection_moves_the_regions_cost(tmp_path, capsys):
    rates, folder = _rates(tmp_path), _selection(tmp_path)
    assert main(["plan", "--images", "7200", "--rates", str(rates), "--json"]) == 0
    before = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["plan", "--images", "7200", "--rates", str(rates), "--selection", str(folder), "--json"]) == 0
    after = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (before["regions_per_image"], before["regions_from"]) == (3, "rates file")
    assert after["regions_per_image"] == pytest.approx(3.2) and str(folder) in after["regions_from"]
    regions = {s["name"]: s for s in after["stages"]}["regions"]
    assert regions["gpu_s_per_image"] == pytest.approx(0.5 * 3.2 * 1 / 6)  # fraction x regions x GPUs / rate
    assert main(["plan", "--images", "7200", "--rates", str(rates), "--regions-per-image", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "regions: 0.5 detector regions per image get a VLM caption (from --regions-per-image)" in out
    assert "OCR regions take their OCR text" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--selection", "{sel}", "--regions-per-image", "2"], "error: --selection and --regions-per-image: give one"),
    (["--regions-per-image", "-1"], "error: --regions-per-image: must be >= 0 (got -1)"),
    (["--selection", "{tmp}/nowhere"], "error: --selection: no summary.json under"),
])
def test_cli_bad_region_flags_exit_2_in_one_line(tmp_path, capsys, argv, message):
    sel = _selection(tmp_path)
    argv = [a.format(sel=sel, tmp=tmp_path) for a in argv]
    assert main(["plan", "--images", "10", "--rates", str(_rates(tmp_path)), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_cli_region_flags_need_a_rates_file_with_a_regions_stage(tmp_path, capsys):
    assert main(["plan", "--images", "10", "--regions-per-image", "2"]) == 2
    assert capsys.readouterr().err.startswith("error: --regions-per-image: needs --rates FILE")
    data = json.loads(json.dumps(EXAMPLE))
    del data["stages"]["regions"]
    (tmp_path / "no-regions.yaml").write_text(yaml.safe_dump(data))
    assert main(["plan", "--images", "10", "--rates", str(tmp_path / "no-regions.yaml"),
                 "--selection", str(_selection(tmp_path))]) == 2
    assert capsys.readouterr().err.startswith("error: --selection: the rates have no 'regions' stage")
