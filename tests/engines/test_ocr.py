"""The PP-OCRv4 engine: reads rendered text as rapidocr does, batches lines across images, names its revision."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

from finecap.engines.ocr import RapidOcrEngine, ocr_revision, pad_to_aspect, rapidocr_lines
from finecap.samples.photos import load_photo
from finecap.samples.source import scene_record
from finecap.samples.text import available_faces, load_font
from finecap.typed_config import ConfigError
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


class CountingSession:
    """An onnxruntime session that counts its forwards and the rows of each."""

    def __init__(self, session):
        self.session, self.rows = session, []

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, names, feeds):
        self.rows.append(len(next(iter(feeds.values()))))
        return self.session.run(names, feeds)


@pytest.fixture
def counted(engine, monkeypatch):
    sessions = {name: CountingSession(getattr(engine.models, name)) for name in ("det", "cls", "rec")}
    for name, session in sessions.items():
        monkeypatch.setattr(engine.models, name, session)
    return sessions


@pytest.fixture(scope="module")
def scenes() -> list[Image.Image]:
    """OCR scenes (1 to 3 rendered words each) and one photo without text."""
    images = [Image.open(io.BytesIO(scene_record(i, seed=11)[0])).convert("RGB") for i in range(6)]
    return images + [load_photo("astronaut")]


def test_a_batch_reads_what_rapidocr_reads_image_by_image(engine, scenes):
    from rapidocr_onnxruntime import RapidOCR

    ocr = RapidOCR(text_score=0.6, max_side_len=2000, det_box_thresh=0.55, det_limit_side_len=640,
                   det_limit_type="min", intra_op_num_threads=1, inter_op_num_threads=1)
    expected = [[(line.quad, line.text, line.score) for line in rapidocr_lines(ocr, image)] for image in scenes]
    found = engine.read_batch(scenes)
    assert sum(len(lines) for lines in expected) >= 8 and expected[-1] == []
    for want, got in zip(expected, found, strict=True):
        assert [line.text for line in got] == [text for _, text, _ in want]
        assert [line.quad for line in got] == [quad for quad, _, _ in want]  # boxes equal, not close
        assert [line.score for line in got] == pytest.approx([score for _, _, score in want], abs=1e-5)


def test_lines_of_many_images_share_forwards_and_the_batch_size_changes_nothing(engine, scenes, counted):
    found = [engine.find_lines(image) for image in scenes]
    lines = sum(len(f.crops) for f in found)
    widths = [set(engine.models.rec_widths(f.crops)) for f in found]
    read = {}
    for size in (1, 4, 32):
        counted["cls"].rows.clear()
        counted["rec"].rows.clear()
        engine.rec_batch_size = size
        try:
            read[size] = [[(line.text, line.quad, line.score) for line in image] for image in engine.recognise(found)]
        finally:
            engine.rec_batch_size = 32
        assert sum(counted["rec"].rows) == lines and max(counted["rec"].rows) <= size
        assert read[size] == read[1]  # scores too: a line's input never depends on its batch
    # At 32: one direction forward for all the lines, one recognition forward per padded width,
    # where image by image each image needs its own.
    assert counted["cls"].rows == [lines] and len(counted["rec"].rows) == len(set.union(*widths))
    assert len(counted["rec"].rows) < sum(len(w) for w in widths)


def test_an_image_without_text_boxes_never_reaches_direction_or_recognition(engine, counted):
    blank = Image.new("RGB", (640, 480), (120, 160, 90))
    assert engine.read_batch([blank, load_photo("stereo_motorcycle")]) == [[], []]
    assert len(counted["det"].rows) == 2 and counted["cls"].rows == [] and counted["rec"].rows == []


def test_the_probe_skips_the_full_detection_where_it_sees_no_text(engine, scenes, counted):
    probed = RapidOcrEngine(min_score=0.6, box_threshold=0.55, limit_side_len=640, probe_side=256)
    probed.models.det = counted["det"]
    assert probed.read_batch(scenes) == engine.read_batch(scenes)
    counted["det"].rows.clear()
    probed.read_batch([scenes[-1], scenes[0]])
    assert len(counted["det"].rows) == 3  # the photo: the probe only; the scene: probe and detector


def test_cuda_without_onnxruntimes_cuda_provider_fails_in_one_line_naming_the_key():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(ConfigError, match=r"^ocr\.device: cuda needs onnxruntime's CUDAExecutionProvider") as err:
        RapidOcrEngine(device="cuda")
    assert "\n" not in str(err.value)


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

