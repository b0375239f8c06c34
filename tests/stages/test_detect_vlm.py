"""detect with `engine: vlm`: a grounder VLM behind a real OpenAI-compatible endpoint on 127.0.0.1.

The endpoint answers every phrase with the same box, so what is tested is the stage around the
model: one request per phrase, the box threshold on the answer's token probabilities, NMS across
phrases, the grounder's provenance, and a failed request rejecting its row with the error.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pytest
from PIL import Image

from finecap.config import ConfigError, load_config
from finecap.stages.detect import DetectStage
from finecap.stages.fingerprints import fingerprints_of, pipeline_prints
from tests.conftest import LOCAL_YAML
from tests.stages.openai_loopback import LoopbackChat

BOX = "<|box_start|>(100,200),(500,600)<|box_end|>"


@pytest.fixture
def chat():
    server = LoopbackChat()
    server.caption = BOX
    yield server
    server.close()


def _config(chat, *overrides):
    grounder = chat.captioner("grounder", prompt="finevit_ground/v1")
    return load_config(LOCAL_YAML, ["detect.engine=vlm", f"detect.grounder={grounder}", *overrides])


def _batch(tmp_path) -> pa.Table:
    def png(colour):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    phrases = [[{"phrase": "a red circle", "category": "circle"}, {"phrase": "a blue star", "category": "star"}],
               []]
    return pa.table({"key": ["a", "b"], "model_image": [png("red"), png("blue")], "phrases": phrases})


def test_every_phrase_is_one_request_and_the_same_box_is_one_region(chat, tmp_path):
    rows = DetectStage(_config(chat))(_batch(tmp_path)).to_pylist()
    assert chat.requests == 2  # two phrases of row a; row b has none
    (region,) = rows[0]["regions"]  # both phrases gave this box: NMS across phrases keeps one
    assert region["bbox"] == pytest.approx([0.1, 0.2, 0.5, 0.6]) and region["origin"] == "detector"
    assert region["category"] in {"circle", "star"} and region["score"] == pytest.approx(0.904837, abs=1e-5)
    assert rows[1]["regions"] == [] and rows[0]["reject_stage"] is None


def test_unsure_boxes_fall_under_the_box_threshold(chat, tmp_path):
    chat.token_logprob = -2.0  # exp(-2) = 0.135 per token
    rows = DetectStage(_config(chat, "detect.box_threshold=0.3"))(_batch(tmp_path)).to_pylist()
    assert rows[0]["regions"] == [] and chat.requests == 2


def test_a_failed_request_rejects_its_row_naming_the_error(chat, tmp_path):
    chat.status = 500
    rows = DetectStage(_config(chat))(_batch(tmp_path)).to_pylist()
    assert rows[0]["reject_stage"] == "detect" and rows[0]["reject_reason"] == "grounder request failed"
    assert "HTTP 500" in rows[0]["reject_detail"]
    assert rows[1]["reject_stage"] is None  # no phrases, no request


def test_the_grounder_is_the_stages_model_in_its_fingerprint_and_provenance(chat):
    config = _config(chat)
    assert DetectStage.provenance(config)[0]["name"] == "grounder"
    other = _config(chat, "detect.grounder.max_tokens=30")
    before, after = fingerprints_of(pipeline_prints(config)), fingerprints_of(pipeline_prints(other))
    assert before["detect"] != after["detect"] and before["ocr"] == after["ocr"]


@pytest.mark.parametrize(("overrides", "key"), [
    (["detect.engine=vlm"], "detect.grounder"),
    (["detect.engine=vlm", "detect.grounder={name: g, model: tiny:vlm-a, prompt: finevit_region/v1}"],
     "detect.grounder.prompt"),
    (["regions.captioner.prompt=region_context/v1", "regions.view=whole"], "regions.view"),  # v1 has no [whole] box
])
def test_a_grounder_or_view_that_cannot_work_fails_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=f"^{key}"):
        load_config(LOCAL_YAML, overrides)
