"""The PP-OCRv4 engine: reads rendered text, keeps its settings across calls, names its revision."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

from finecap.engines.ocr import RapidOcrEngine, ocr_revision, pad_to_aspect
from finecap.samples.text import available_faces, load_font
from tests.conftest import REPO


@pytest.fixture(scope="module")
def engine():
    return RapidOcrEngine(min_score=0.6, box_threshold=0.55, limit_side_len=640)


def _sign(text: str, colour=(200, 20, 20), background=(20, 40, 200)) -> tuple[Image.Image, tuple]:
    image = Image.new("RGB", (480, 240), background)
    font = load_font(available_faces()[0], 48)
    draw = ImageDraw.Draw(image)
    draw.text((60, 90), text, font=font, fill=colour)
    return image, draw.textbbox((60, 90), text, font=font)


def test_reads_a_rendered_line_where_it_is(engine):
    image, (x1, y1, x2, y2) = _sign("Harbor")
    (line,) = engine.read(image)
    assert line.text == "Harbor" and 0.6 <= line.score <= 1.0
    bx1, by1, bx2, by2 = line.box()
    assert bx1 <= x1 + 4 and by1 <= y1 + 4 and bx2 >= x2 - 4 and by2 >= y2 - 4
    assert (bx2 - bx1) < 1.3 * (x2 - x1)


def test_settings_survive_calls(engine):
    # rapidocr resets these three for every later call when any keyword reaches a call.
    for _ in range(2):
        engine.read(_sign("OPEN")[0])
        assert engine._ocr.text_det.postprocess_op.box_thresh == 0.55
        assert engine._ocr.text_score == 0.6


def test_revision_names_the_package_and_its_models(engine):
    assert re.fullmatch(r"\d+\.\d+\.\d+\+sha256:[0-9a-f]{16}", engine.revision)
    assert engine.revision == ocr_revision() and engine.model == "PP-OCRv4"


def test_loading_the_engine_writes_nothing_to_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    code = "from finecap.engines.ocr import RapidOcrEngine, ocr_revision; ocr_revision(); RapidOcrEngine()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO)
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []


def test_only_extremely_elongated_images_are_padded_to_four_to_one():
    photo = Image.new("RGB", (800, 100), (10, 200, 30))  # 8:1 is rapidocr's own limit: untouched
    assert pad_to_aspect(photo) is photo
    for size, padded in (((1, 500), (125, 500)), ((2000, 1), (2000, 500)), ((1400, 60), (1400, 350))):
        out = pad_to_aspect(Image.new("RGB", size, (10, 200, 30)))
        assert out.size == padded
        assert out.getpixel((0, 0)) == (10, 200, 30) and out.getpixel((padded[0] - 1, padded[1] - 1)) == (0, 0, 0)

