"""The quality page's ground-truth section: the saved `finecap eval dataset` result, and a stale one."""

from __future__ import annotations

import json

from finecap.cli import main
from finecap.samples.synth_dataset import write_synth_dataset


def test_the_quality_page_shows_the_saved_evaluation_and_says_when_it_is_stale(tmp_path, capsys):
    write_synth_dataset(str(tmp_path / "s"), 12, seed=2, heldout_fraction=0.25, size=(160, 120))
    out = tmp_path / "s" / "heldout"
    page = out / "report" / "quality.html"
    assert main(["report", str(out), "--gallery-size", "2"]) == 0
    assert "Against ground truth" in page.read_text() and "not scored" in page.read_text()
    assert main(["eval", "dataset", str(out), "--truth", str(out / "truth.coco.json"), "--json"]) == 0
    assert main(["report", str(out), "--gallery-size", "2"]) == 0
    html = page.read_text()
    section = html.split("<h2>Against ground truth</h2>", 1)[1]
    assert "not scored" not in section and "3 of 3 truth images have a row" in section
    assert "pycocotools" in section and '<td class="n">1</td>' in section  # AP 1.0 on the true boxes
    quality = json.loads((out / "report" / "quality.json").read_text())
    assert "ground_truth" not in quality  # diff reads each metric once, from eval_dataset.json
    saved = out / "report" / "eval_dataset.json"
    saved.write_text(json.dumps({**json.loads(saved.read_text()), "version": "000007"}))
    assert main(["report", str(out), "--gallery-size", "2"]) == 0
    assert "scored at version 000007" in page.read_text()
    capsys.readouterr()
