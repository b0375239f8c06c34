"""The gallery rendered in real headless Chromium: the boxes of a known sample are drawn where
its data says, in its origin's colour; paging works without a server; sorted by a quality signal,
the cards follow it and a flagged row shows its badge."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from finecap.report.gallery import GalleryOptions, sample_positions, write_gallery
from finecap.report.plots import ORIGIN_COLOURS
from tests.report.helpers import detector, ocr, solid_png, write_output

BACKGROUND = (40, 110, 70)
SIZE = (400, 300)
DETECTOR_BOX = [0.10, 0.20, 0.60, 0.70]
OCR_BOX = [0.65, 0.75, 0.95, 0.90]


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])


def _near(pixels: np.ndarray, colour, tolerance: float = 40) -> np.ndarray:
    return np.linalg.norm(pixels.astype(float) - np.asarray(colour, float), axis=-1) < tolerance


def _runs(mask: np.ndarray) -> list[float]:
    """Centres of the runs of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return [(a + b - 1) / 2 for a, b in zip(edges[::2], edges[1::2], strict=True)]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    from finecap.config import load_config
    from tests.conftest import LOCAL_YAML

    root = tmp_path_factory.mktemp("gallery")
    images = root / "images"
    images.mkdir()
    (images / "a-known.png").write_bytes(solid_png(SIZE, BACKGROUND))
    (images / "b.png").write_bytes(solid_png((320, 240), (200, 200, 200)))
    (images / "c.png").write_bytes(solid_png((320, 240), (90, 90, 160)))
    cfg = load_config(LOCAL_YAML, ["source.shard_size=2"], **{"source.uri": str(images), "output.uri": str(root / "out")})
    regions = {"a-known.png": [detector(DETECTOR_BOX, "a green field", "grass"), ocr(OCR_BOX, "EXIT")],
               "c.png": [ocr([0.1, 0.1, 0.3, 0.2], "PAGE TWO")]}
    write_output(cfg, regions_by_key=regions)
    pages = write_gallery(str(root / "out"), GalleryOptions(per_page=2))
    return root / "out" / "report" / "gallery", pages


def test_sample_positions_are_even_deterministic_and_cover_small_outputs():
    assert sample_positions({"p0": 2, "p1": 1}, 10) == {"p0": [0, 1], "p1": [0]}
    picks = sample_positions({"p0": 50, "p1": 0, "p2": 50}, 4)
    assert picks == {"p0": [0, 25], "p2": [0, 25]}
    assert sample_positions({"p0": 50, "p1": 0, "p2": 50}, 4) == picks


def test_boxes_of_a_known_sample_are_drawn_where_the_data_says(gallery, tmp_path):
    from finecap.report.browser import screenshot

    folder, pages = gallery
    assert pages == 2
    shot = np.asarray(Image.open(screenshot(folder / "index.html", tmp_path / "page1.png", (1200, 900))).convert("RGB"))
    # Where Chromium put the known image: the bounding box of its background colour.
    ys, xs = np.nonzero(_near(shot, BACKGROUND, 12))
    left, top, right, bottom = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    width, height = right - left, bottom - top
    assert abs(width / height - SIZE[0] / SIZE[1]) < 0.02  # the whole image, undistorted
    for box, origin in ((DETECTOR_BOX, "detector"), (OCR_BOX, "ocr")):
        colour = _rgb(ORIGIN_COLOURS[origin])
        x1, y1, x2, y2 = (left + box[0] * width, top + box[1] * height, left + box[2] * width, top + box[3] * height)
        row = shot[int((y1 + y2) / 2), left:right]  # a horizontal line through the box's middle
        column = shot[top:bottom, int((x1 + x2) / 2)]
        assert _runs(_near(row, colour)) == pytest.approx([x1 - left, x2 - left], abs=2.0), origin
        assert _runs(_near(column, colour)) == pytest.approx([y1 - top, y2 - top], abs=2.0), origin
        inside = shot[int((y1 + y2) / 2), int((x1 + x2) / 2)]
        assert _near(inside[None], BACKGROUND, 12).all(), "boxes are outlines, the image shows through"


def test_second_page_holds_the_rest_and_links_back(gallery):
    from finecap.report.browser import dump_dom

    folder, _ = gallery
    dom = dump_dom(folder / "page-0002.html")
    assert 'data-key="c.png"' in dom and 'data-key="a-known.png"' not in dom
    assert 'href="index.html" rel="prev"' in dom and "PAGE TWO" in dom
    assert (folder / "images" / "00003.jpg").exists()


SORT_COLOURS = {"a.png": (40, 110, 70), "b.png": (200, 200, 60), "c.png": (90, 90, 160), "d.png": (60, 170, 190)}
GROUNDING = {"a.png": 0.2, "b.png": 0.9, "d.png": 0.5}  # c.png: no signals (the quality stage did not run)


@pytest.fixture(scope="module")
def sorted_gallery(tmp_path_factory):
    """Four rows sorted by grounding_rate; a.png (the lowest) is flagged."""
    from finecap.config import load_config
    from tests.conftest import LOCAL_YAML
    from tests.quality.outputs import signals

    root = tmp_path_factory.mktemp("sorted")
    images = root / "images"
    images.mkdir()
    for key, colour in SORT_COLOURS.items():
        (images / key).write_bytes(solid_png((200, 150), colour))
    cfg = load_config(LOCAL_YAML, ["source.shard_size=3"], **{"source.uri": str(images), "output.uri": str(root / "out")})
    rows = {key: signals(("low_grounding",) if rate < 0.25 else (), grounding_rate=rate, repetition=0.0)
            for key, rate in GROUNDING.items()}
    write_output(cfg, signals_by_key=rows)
    assert write_gallery(str(root / "out"), GalleryOptions(per_page=10, sort_by="grounding_rate")) == 1
    return root / "out"


def _sample(key: str, value: float | None):
    from finecap.report.gallery_html import Sample

    return Sample(key, "part-000000", 1, 1, f"{key}.jpg", [], [], None if value is None else {"repetition": value})


def test_order_samples_lowest_or_highest_first_rows_without_the_signal_last():
    from finecap.report.gallery import order_samples

    samples = [_sample("w", 0.5), _sample("x", None), _sample("y", 0.1), _sample("z", 0.5)]
    assert [s.key for s in order_samples(samples, "repetition")] == ["y", "w", "z", "x"]
    assert [s.key for s in order_samples(samples, "-repetition")] == ["w", "z", "y", "x"]
    assert [s.key for s in order_samples(samples, None)] == ["w", "x", "y", "z"]


def test_a_sorted_gallery_shows_the_worst_rows_of_the_whole_output(sorted_gallery, tmp_path):
    from finecap.dataset import committed_shards
    from finecap.report.gallery import collect_samples, worst_positions

    shards = {s.shard_id: s for s in committed_shards(str(sorted_gallery))}
    keys = {shard: read_keys(shards[shard]) for shard in shards}
    picked = [keys[shard][i] for shard, positions in worst_positions(shards, "grounding_rate", 2).items()
              for i in positions]
    assert sorted(picked) == ["a.png", "d.png"]  # 0.2 and 0.5: not the even sample's first two
    highest = worst_positions(shards, "-grounding_rate", 1)
    assert [keys[s][i] for s, p in highest.items() for i in p] == ["b.png"]
    shown = collect_samples(str(sorted_gallery), GalleryOptions(size=3, sort_by="grounding_rate"), str(tmp_path))
    assert [s.key for s in shown] == ["a.png", "d.png", "b.png"]  # c.png has no signal: not needed


def read_keys(shard) -> list[str]:
    from finecap.dataset import read_data

    return read_data(shard, ["key"]).column("key").to_pylist()


def test_an_unknown_sort_signal_names_the_choices():
    from finecap.report import ReportError

    with pytest.raises(ReportError, match=r"unknown signal 'flags'; choose one of phrases, .*region_agreement"):
        GalleryOptions(sort_by="flags")
    assert GalleryOptions(sort_by="-ocr_ignored").sort_by == "-ocr_ignored"


def test_sorted_pages_follow_the_signal_with_a_visible_badge_on_the_flagged_row(sorted_gallery, tmp_path):
    from finecap.report.browser import dump_dom, screenshot
    from finecap.report.gallery_html import FLAG_COLOUR

    page = sorted_gallery / "report" / "gallery" / "index.html"
    dom = dump_dom(page)
    assert re.findall(r'data-key="([^"]+)"', dom) == ["a.png", "d.png", "b.png", "c.png"]
    assert re.findall(r'class="card flagged" data-flags="([^"]+)"', dom) == ["low_grounding"]
    assert "sorted by grounding_rate, lowest first" in dom
    shot = np.asarray(Image.open(screenshot(page, tmp_path / "sorted.png", (1200, 1400))).convert("RGB"))
    boxes = {}
    for key, colour in SORT_COLOURS.items():  # where Chromium drew each image
        ys, xs = np.nonzero(_near(shot, colour, 12))
        assert ys.size > 1000, key
        boxes[key] = (xs.min(), ys.min(), xs.max() + 1)
    # reading order: grid rows top to bottom (cards of one row start within a badge's height), then left to right
    first_top = min(top for _, top, _ in boxes.values())
    order = sorted(boxes, key=lambda k: (boxes[k][1] > first_top + 100, boxes[k][0]))
    assert order == ["a.png", "d.png", "b.png", "c.png"]
    for key, (left, top, right) in boxes.items():
        band = _near(shot[max(top - 80, 0) : top, left:right], _rgb(FLAG_COLOUR), 30)  # just above the image
        # A badge is a filled box over many pixel rows; a card's border (the flagged card above) is 2 rows.
        badge_rows = int((band.sum(axis=1) > 20).sum())
        assert (badge_rows >= 8) == (key == "a.png"), (key, badge_rows)
