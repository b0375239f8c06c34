"""The ocr stage measured for real: PP-OCRv4 on generated scenes with known words and boxes."""

from __future__ import annotations

import io
import time

import pyarrow as pa
import pytest
from PIL import Image, ImageDraw

from finecap.config import OcrConfig, load_config
from finecap.samples.matching import match_words
from finecap.samples.source import load_ground_truth, write_sample_source
from finecap.samples.text import available_faces, load_font
from finecap.samples.vocab import WORDS
from finecap.sources import make_source
from finecap.stages.ocr import (
    OcrStage,
    fill_text_captions,
    is_text_caption,
    make_ocr_engine,
    reading_order,
    text_inside,
)
from finecap.stages.prepare import PrepareStage
from tests.conftest import LOCAL_YAML

N_SCENES = 12


@pytest.fixture(scope="module")
def engine():
    return make_ocr_engine(OcrConfig())


def _stage(engine, *overrides: str) -> OcrStage:
    return OcrStage(load_config(LOCAL_YAML, ["ocr.enabled=true", *overrides]), engine=engine)


def _region(bbox, origin="ocr", text=None, caption=None) -> dict:
    return {"bbox": bbox, "phrase": None, "category": "text", "score": 1.0, "origin": origin,
            "caption": caption, "caption_model": None, "ocr_text": text}


def test_stage_reads_90_percent_of_rendered_words_exactly_at_the_right_place(tmp_path, engine):
    source = write_sample_source(tmp_path / "src", n_scenes=N_SCENES, seed=11, include_photos=False)
    truth = load_ground_truth(source)
    config = load_config(LOCAL_YAML, ["ocr.enabled=true", f"source.uri={source}", "source.shard_size=64"])
    src = make_source(config)
    batch = PrepareStage(config)(src.read(src.plan()[0]))
    started = time.perf_counter()
    out = OcrStage(config, engine=engine)(batch).to_pylist()
    per_image = (time.perf_counter() - started) / len(out)
    matches = []
    for row in out:
        record = truth[row["key"]]
        w, h = record["width"], record["height"]
        assert all(r["origin"] == "ocr" and r["category"] == "text" for r in row["regions"])
        assert all(0 <= v <= 1 for r in row["regions"] for v in r["bbox"])
        detections = []
        for r in row["regions"]:
            x1, y1, x2, y2 = r["bbox"][0] * w, r["bbox"][1] * h, r["bbox"][2] * w, r["bbox"][3] * h
            detections.append((((x1, y1), (x2, y1), (x2, y2), (x1, y2)), r["ocr_text"]))
        matches += match_words([(word["text"], word["bbox_px"]) for word in record["words"]], detections)
        assert row["ocr_document"] is False
    read = [m for m in matches if m.ok]
    misses = [(m.text, m.read, round(m.iou, 2)) for m in matches if not m.ok]
    print(f"OCR: {len(read)}/{len(matches)} words read exactly at IoU >= 0.5; {per_image:.2f} s per image")
    assert len(matches) >= 20, "too few words to measure"
    assert len(read) >= 0.9 * len(matches), f"{len(read)}/{len(matches)} read; misses: {misses}"


def _page(lines: int = 16) -> bytes:
    """A plain text page: many short lines, as a document scan would have."""
    image = Image.new("RGB", (900, 1100), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = load_font(available_faces()[0], 26)
    for i in range(lines):
        draw.text((60, 50 + i * 62), " ".join(WORDS[3 * i : 3 * i + 3]), font=font, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_document_like_images_keep_more_lines_and_are_flagged(engine):
    batch = pa.table({"key": ["page"], "image_bytes": pa.array([_page()], pa.binary())})
    auto = _stage(engine, "ocr.max_regions=4")(batch).to_pylist()[0]
    never = _stage(engine, "ocr.max_regions=4", "ocr.document_mode=never")(batch).to_pylist()[0]
    assert auto["ocr_document"] is True and len(auto["regions"]) >= 14
    assert never["ocr_document"] is False and len(never["regions"]) == 4
    assert [r["ocr_text"] for r in auto["regions"][:2]] == [" ".join(WORDS[0:3]), " ".join(WORDS[3:6])]
    assert {r["ocr_text"] for r in never["regions"]} <= {r["ocr_text"] for r in auto["regions"]}


def test_text_captions_are_recognised():
    words = {"text"}
    for caption in ("text", "Text.", "the text", "Some text!", "  a TEXT "):
        assert is_text_caption(caption, words), caption
    for caption in (None, "", "a text sign", "texts", "red text on a wall"):
        assert not is_text_caption(caption, words), caption


def test_ocr_text_inside_a_box_in_reading_order():
    lines = [
        _region([0.5, 0.1, 0.7, 0.2], text="world"),
        _region([0.1, 0.11, 0.4, 0.21], text="hello"),
        _region([0.1, 0.3, 0.3, 0.4], text="again"),
        _region([0.8, 0.8, 0.9, 0.9], text="outside"),
        _region([0.68, 0.3, 0.95, 0.4], text="half out"),  # 2/27 inside: not counted
    ]
    assert [r["ocr_text"] for r in reading_order(lines[:3])] == ["hello", "world", "again"]
    assert text_inside([0.0, 0.0, 0.75, 0.5], lines) == "hello world again"
    assert text_inside([0.0, 0.6, 0.2, 0.7], lines) is None


def test_detector_regions_captioned_text_take_the_ocr_text():
    regions = [
        _region([0.1, 0.1, 0.5, 0.3], origin="detector", caption="Text."),
        _region([0.6, 0.6, 0.9, 0.9], origin="detector", caption="text"),  # no OCR inside: unchanged
        _region([0.1, 0.5, 0.5, 0.7], origin="detector", caption="a red sign"),
        _region([0.12, 0.12, 0.3, 0.2], text="OPEN"),
        _region([0.12, 0.52, 0.3, 0.6], text="SALE"),
    ]
    assert fill_text_captions(regions, {"text"}, "PP-OCRv4@x") == 1
    assert regions[0] | {"bbox": None} == _region(None, "detector", "OPEN", "OPEN") | {"caption_model": "PP-OCRv4@x"}
    assert regions[1]["caption"] == "text" and regions[1]["ocr_text"] is None
    assert regions[2]["caption"] == "a red sign"


def test_stage_adds_lines_after_detector_regions_and_leaves_their_captions_to_the_regions_stage(engine):
    from finecap.stages.detect import regions_type

    page = _page(lines=3)
    detector = _region([0.0, 0.0, 1.0, 0.5], origin="detector", caption="text")
    batch = pa.table({"key": ["p"], "image_bytes": pa.array([page], pa.binary()),
                      "regions": pa.array([[detector]], regions_type())})
    (row,) = _stage(engine)(batch).to_pylist()
    assert [r["origin"] for r in row["regions"]] == ["detector", "ocr", "ocr", "ocr"]
    assert row["regions"][0]["caption"] == "text"  # OCR reads only its own section: regions fills it


class FailingRecognition:
    """The real engine, except that recognising lines of an image of `size` raises (as onnxruntime
    may on a line it cannot take)."""

    def __init__(self, engine, size: tuple[int, int]):
        self.engine, self.size = engine, size

    def find_lines(self, image):
        return self.engine.find_lines(image)

    def recognise(self, found):
        if any(f.size == self.size for f in found):
            raise RuntimeError("recognition failed")
        return self.engine.recognise(found)


def test_a_row_whose_lines_fail_recognition_is_the_only_reject_and_the_rest_are_read(engine):
    pages = [_page(lines=2), _page(lines=3), _sign(480, 240)]
    batch = pa.table({"key": ["a", "b", "c"], "image_bytes": pa.array(pages, pa.binary())})
    config = load_config(LOCAL_YAML, ["ocr.enabled=true"])
    plain = OcrStage(config, engine=engine)(batch).to_pylist()
    failing = OcrStage(config, engine=FailingRecognition(engine, (480, 240)))(batch).to_pylist()
    assert [r["reject_reason"] for r in plain] == [None, None, None]
    assert [r["reject_reason"] for r in failing] == [None, None, "ocr_error"]
    assert failing[2]["reject_detail"] == "480x240: RuntimeError: recognition failed"
    assert [len(r["regions"]) for r in plain] == [2, 3, 1]
    assert [r["regions"] for r in failing[:2]] == [r["regions"] for r in plain[:2]]


def _sign(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), (20, 40, 200))
    ImageDraw.Draw(image).text((60, 90), "Harbor", font=load_font(available_faces()[0], 48), fill=(230, 230, 20))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
