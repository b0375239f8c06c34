"""The gallery rendered in real headless Chromium: the boxes of a known sample are drawn where
its data says, in its origin's colour; paging works without a server."""

from __future__ import annotations

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
