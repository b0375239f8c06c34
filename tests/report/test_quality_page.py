"""`finecap report` writes report/quality.html and quality.json: per-captioner tables, duplicate
captions, signal tables and distribution plots; on an output without signals it says so."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from finecap.cli import main
from finecap.quality.summary import NO_SIGNALS
from tests.quality.outputs import signals
from tests.report.helpers import caption, solid_png, write_output


def _cells(html: str, heading: str) -> list[list[str]]:
    """The rows of the table under `heading` (tags stripped)."""
    section = html.split(f"<h2>{heading}</h2>", 1)[1].split("<h2>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r)] for r in rows]


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """Four images; captioner a writes one text three times, b one twice; signals on three rows."""
    from finecap.config import load_config
    from tests.conftest import LOCAL_YAML

    root = tmp_path_factory.mktemp("quality")
    images = root / "images"
    images.mkdir()
    for i in range(4):
        (images / f"img{i}.png").write_bytes(solid_png((48, 32), (60 * i, 90, 120)))
    cfg = load_config(LOCAL_YAML, ["source.shard_size=2"], **{"source.uri": str(images), "output.uri": str(root / "out")})
    captions = {f"img{i}.png": [caption("A photo of a room.", 5),
                                caption("a <b>bold</b> view" if i < 2 else "a plain view", 5, "tiny:vlm-b")]
                for i in range(3)}
    rows = {"img0.png": signals(("low_grounding",), grounding_rate=0.0, repetition=0.1),
            "img1.png": signals(grounding_rate=0.5, repetition=0.0, phrases=2, grounded_phrases=1, ocr_quote_support=1.0,
                                ocr_ignored=0.0, min_caption_words=5, max_caption_words=9, region_agreement=1.0),
            "img2.png": signals(("low_grounding", "repetitive"), grounding_rate=0.2, repetition=0.6)}
    write_output(cfg, captions_by_key=captions, signals_by_key=rows)
    assert main(["report", str(root / "out"), "--sort-by=-repetition"]) == 0
    return root / "out" / "report"


def test_index_links_the_quality_page_and_its_json(reported):
    assert 'href="quality.html"' in (reported / "index.html").read_text()
    quality = json.loads((reported / "quality.json").read_text())
    assert (quality["signals"]["rows"], quality["signals"]["rows_with_signals"]) == (4, 3)
    assert (quality["duplicates"]["captions"], quality["duplicates"]["duplicated"]) == (7, 5)  # img3: "a scene"


def test_page_shows_captioners_signals_flags_and_repeated_captions(reported):
    page = (reported / "quality.html").read_text()
    summary = dict(_cells(page, "Summary"))
    assert summary["rows flagged"] == "2 (66.7%)"
    assert summary["duplicated captions (text occurs more than once)"] == "5 (71.4%)"
    captioners = _cells(page, "Global captions per captioner")
    assert captioners[0][:4] == ["model", "revision", "prompt", "captions"]
    by_model = {row[0]: row for row in captioners[1:]}
    assert by_model["tiny:vlm-a"][3] == "4" and by_model["tiny:vlm-a"][-2:] == ["3", "0.75"]  # 3 of 4 repeat
    assert by_model["tiny:vlm-b"][-2:] == ["2", "0.6667"]
    grounding = next(r for r in _cells(page, "Row signals") if r[0] == "grounding_rate")
    assert grounding[1:5] == ["3", "0.2333", "0.04", "0.2"]  # sorted 0 0.2 0.5: p10 at rank 0.2 = 0.04
    flags = dict((r[0], r[1]) for r in _cells(page, "Flags (quality.* thresholds)")[1:])
    assert (flags["low_grounding"], flags["repetitive"], flags["short_caption"]) == ("2", "1", "0")
    assert _cells(page, "Most repeated captions (normalised)")[1:] == [["a photo of a room", "3"],
                                                                       ["a &lt;b&gt;bold&lt;/b&gt; view", "2"]]
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page


def test_every_signal_has_a_distribution_panel(reported):
    page = (reported / "quality.html").read_text()
    assert re.findall(r'src="plots/([^"]+)"', page) == ["signals.png", "flags.png"]
    with Image.open(reported / "plots" / "signals.png") as image:
        # every one of the nine numeric signals measured (img1), two panels a row: five rows of 300 px
        assert image.format == "PNG" and image.height == 5 * 300
    assert (reported / "plots" / "flags.png").exists()


def test_an_output_without_signals_gets_a_page_saying_so(tmp_path):
    from tests.dataset.helpers import write_shard

    out = tmp_path / "out"
    png = solid_png((32, 24), (10, 20, 30))  # the size tests.dataset.helpers.row records
    write_shard(str(out), "part-000000", ["a", "b"], version="v2", image=png)
    assert main(["report", str(out), "--sort-by", "grounding_rate"]) == 0
    page = (out / "report" / "quality.html").read_text()
    assert NO_SIGNALS in page and "signals.png" not in page
    assert dict(_cells(page, "Summary"))["rows with signals"] == "0 (0.0%)"
    assert not (out / "report" / "plots" / "signals.png").exists()
    keys = re.findall(r'data-key="([^"]+)"', (out / "report" / "gallery" / "index.html").read_text())
    assert keys == ["a", "b"]  # nothing to sort by: sample order


def test_unknown_sort_signal_is_one_line_naming_the_choices(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--sort-by", "grounding"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: gallery sort_by: unknown signal 'grounding'")
    assert "grounding_rate, ocr_quote_support" in err and "-NAME" in err


def test_report_sorts_the_gallery_highest_repetition_first(reported):
    keys = re.findall(r'data-key="([^"]+)"', (reported / "gallery" / "index.html").read_text())
    assert keys == ["img2.png", "img0.png", "img1.png", "img3.png"]  # 0.6, 0.1, 0.0, not measured
