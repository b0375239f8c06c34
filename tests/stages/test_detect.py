"""The detect stage: phrases from real captions, the tiny Grounding DINO, regions as the schema wants.

The tiny detector has random weights, so its boxes are noise; what is tested is everything
around them: which phrases are prompted, thresholds, NMS, area and count limits, the record.
"""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest

from finecap.config import load_config
from finecap.engines.detector import GroundingDinoEngine
from finecap.engines.detector_grounding import iou_matrix
from finecap.samples.source import load_ground_truth, write_sample_source
from finecap.sources import make_source
from finecap.stages.caption import CAPTION_TYPE
from finecap.stages.detect import DetectStage, regions_type
from finecap.stages.phrases import PhrasesStage
from finecap.stages.prepare import PrepareStage
from tests.conftest import LOCAL_YAML

ON = ["caption.enabled=true", "phrases.enabled=true", "detect.enabled=true", "detect.model=tiny:gdino"]


@pytest.fixture(scope="module")
def engine():
    return GroundingDinoEngine("tiny:gdino")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Three sample scenes, prepared, captioned with their true captions, and their phrases."""
    source = write_sample_source(tmp_path_factory.mktemp("src"), n_scenes=3, seed=4, include_photos=False)
    truth = load_ground_truth(source)
    config = load_config(LOCAL_YAML, [*ON, f"source.uri={source}"])
    src = make_source(config)
    rows = PrepareStage(config)(src.read(src.plan()[0]))
    captions = [[{"text": truth[k]["caption"], "model": "truth", "model_revision": "scenes", "prompt_id": "x/v1",
                  "num_tokens": 1}] for k in rows.column("key").to_pylist()]
    captions[2] = []  # an image whose captions give no phrases
    rows = rows.append_column("captions", pa.array(captions, pa.list_(CAPTION_TYPE)))
    return PhrasesStage(config)(rows)


def _detect(engine, batch, *overrides):
    config = load_config(LOCAL_YAML, [*ON, *overrides])
    return config, DetectStage(config, engine=engine)(batch).to_pylist()


def test_detector_regions_follow_the_config_and_the_schema(engine, batch):
    config, rows = _detect(engine, batch, "detect.max_regions=6")
    cfg = config.detect
    assert [len(r["phrases"]) > 0 for r in rows] == [True, True, False]
    assert rows[2]["regions"] == []
    for row in rows[:2]:
        regions = row["regions"]
        assert 0 < len(regions) <= 6
        by_phrase = {p["phrase"]: p["category"] for p in row["phrases"]}
        for r in regions:
            x1, y1, x2, y2 = r["bbox"]
            assert 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1
            assert (x2 - x1) * (y2 - y1) >= cfg.min_box_area
            assert r["origin"] == "detector" and r["score"] >= cfg.box_threshold
            assert by_phrase[r["phrase"]] == r["category"]
            assert r["caption"] is None and r["ocr_text"] is None
        assert [r["score"] for r in regions] == sorted((r["score"] for r in regions), reverse=True)
        boxes = [r["bbox"] for r in regions]
        for a, b in itertools.combinations(range(len(boxes)), 2):
            assert iou_matrix([boxes[a]], [boxes[b]])[0, 0] <= cfg.nms_iou


def test_thresholds_and_earlier_regions(engine, batch):
    earlier = [{"bbox": [0.0, 0.0, 0.5, 0.5], "phrase": None, "category": "text", "score": 1.0, "origin": "ocr",
                "caption": None, "caption_model": None, "ocr_text": "SALE", "agreement": None}]
    one = batch.slice(0, 1).append_column("regions", pa.array([earlier], regions_type()))
    _, (loose,) = _detect(engine, one, "detect.max_regions=100", "detect.nms_iou=1.0")
    _, (strict,) = _detect(engine, one, "detect.max_regions=100", "detect.nms_iou=1.0", "detect.box_threshold=0.9999")
    # Detector regions go first, as a first build orders them, when a rebuild kept OCR's.
    assert loose["regions"][-1] == earlier[0] and strict["regions"][-1] == earlier[0]
    assert all(r["score"] >= 0.9999 and r["origin"] == "detector" for r in strict["regions"][:-1])
    assert len(strict["regions"]) < len(loose["regions"])


def test_detect_needs_phrases_and_phrases_need_captions():
    from finecap.config import ConfigError

    with pytest.raises(ConfigError, match=r"detect\.enabled"):
        load_config(LOCAL_YAML, ["phrases.enabled=false"])
    with pytest.raises(ConfigError, match=r"phrases\.enabled"):
        load_config(LOCAL_YAML, ["caption.enabled=false"])
