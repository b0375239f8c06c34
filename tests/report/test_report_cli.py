"""`finecap report`: stats.json, plots, index.html and the dataset card, and loading the output
folder with `datasets.load_dataset(OUTPUT)` through that card."""

import io
import json
import re
from pathlib import Path

import pytest
import yaml
from PIL import Image

from finecap.cli import main
from finecap.schema import load_schema
from tests.report.helpers import detector, ocr, write_output

REGIONS = {
    "img01.png": [detector([0.1, 0.1, 0.5, 0.5], "a red box", "a box"), ocr([0.6, 0.6, 0.9, 0.7], "HI")],
    "img02.png": [detector([0.2, 0.2, 0.4, 0.4], "a <script>alert(1)</script> tag", "x & y")],
}


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """One output (10 images, 1 broken file, shards of 4) and one `finecap report` run on it."""
    from finecap.config import load_config
    from tests.conftest import LOCAL_YAML, png_bytes

    root = tmp_path_factory.mktemp("report")
    images = root / "images"
    images.mkdir()
    for i in range(10):
        (images / f"img{i:02d}.png").write_bytes(png_bytes((64 + 4 * i, 48), (20 * i, 100, 200 - 15 * i)))
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    cfg = load_config(LOCAL_YAML, ["source.shard_size=4"], **{"source.uri": str(images), "output.uri": str(root / "out")})
    write_output(cfg, regions_by_key=REGIONS)
    assert main(["report", str(root / "out"), "--per-page", "4"]) == 0
    return root / "out"


def _card(out: Path) -> tuple[dict, str]:
    text = (out / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n(.*)", text, re.S)
    assert match, "the card starts with a YAML header"
    return yaml.safe_load(match.group(1)), match.group(2)


def test_report_writes_stats_plots_and_an_index_linking_them(reported):
    stats = json.loads((reported / "report" / "stats.json").read_text())
    assert (stats["rows"], stats["rejects"], stats["regions"]["total"]) == (10, 1, 3)
    plots = sorted(p.name for p in (reported / "report" / "plots").iterdir())
    assert {"caption_tokens.png", "regions_per_image.png", "rejects.png", "image_size.png", "quality.png",
            "stage_seconds.png", "top_categories.png"} <= set(plots)
    for name in plots:
        with Image.open(reported / "report" / "plots" / name) as image:
            assert image.format == "PNG" and image.width > 300
    index = (reported / "report" / "index.html").read_text()
    quality = (reported / "report" / "quality.html").read_text()  # the quality page shows its own plots
    assert sorted(re.findall(r'src="plots/([^"]+)"', index + quality)) == plots
    assert 'href="quality.html"' in index
    assert 'href="gallery/index.html"' in index and "(3 pages)" in index  # 10 rows, 4 per page
    assert "<td>decode_error</td>" in index


def test_card_header_matches_the_schema_and_the_data(reported):
    import datasets

    header, body = _card(reported)
    assert header["configs"] == [{"config_name": "default", "default": True,
                                  "data_files": [{"split": "train", "path": "data/*.parquet"}]}]
    features = datasets.Features._from_yaml_list(header["dataset_info"]["features"])
    assert features == load_schema().features()
    assert header["size_categories"] == ["n<1K"]
    data_bytes = sum(p.stat().st_size for p in (reported / "data").glob("*.parquet"))
    assert header["dataset_info"]["download_size"] == data_bytes
    for fact in ("sha256:test", "tiny:vlm-a", "sha256:aaaa", "global_detailed/v1", "sha256:pppp",
                 "decode_error", "Captions are noise"):
        assert fact in body, fact
    assert "| images (rows) | 10 |" in body


def test_output_folder_loads_with_datasets_through_the_card(reported, tmp_path):
    import datasets

    ds = datasets.load_dataset(str(reported), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 10  # the data shards only: rejects and report files are not rows
    assert ds.features == load_schema().features()
    row = next(r for r in ds if r["key"] == "img01.png")
    assert isinstance(row["image"], Image.Image) and row["image"].size == (68, 48)
    assert [r["origin"] for r in row["regions"]] == ["detector", "ocr"]
    assert row["regions"][1]["ocr_text"] == "HI"


def test_report_refuses_an_output_without_shards(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2  # missing input: the command could not run
    assert capsys.readouterr().err.startswith("error: no committed shards")


def test_gallery_pages_hold_every_row_once_with_escaped_text(reported):
    pages = sorted((reported / "report" / "gallery").glob("*.html"))
    assert [p.name for p in pages] == ["index.html", "page-0002.html", "page-0003.html"]
    keys = [k for p in pages for k in re.findall(r'data-key="([^"]+)"', p.read_text())]
    assert keys == [f"img{i:02d}.png" for i in range(10)]
    first = pages[0].read_text()
    assert "<script>alert(1)" not in first and "&lt;script&gt;alert(1)&lt;/script&gt; tag" in first
    assert 'href="page-0002.html" rel="next"' in first and "rel=\"prev\"" not in first
    images = sorted((reported / "report" / "gallery" / "images").iterdir())
    assert len(images) == 10
    with Image.open(io.BytesIO(images[1].read_bytes())) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (68, 48)
