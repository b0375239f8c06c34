"""The regions stage: prompt templates, the views the VLM sees, and captions with provenance."""

from __future__ import annotations

import dataclasses
import io
import shutil

import pyarrow as pa
import pytest
from PIL import Image

from finecap.box_format import box_coordinates
from finecap.config import RegionsConfig, load_config
from finecap.engines.base import Generation, VisionLanguageEngine
from finecap.prompts import load_prompt
from finecap.stages.detect import regions_type
from finecap.stages.regions import OUTLINE, RegionsStage, crop_region, region_view, render_prompt
from finecap.stages.write import row_counts
from tests.conftest import LOCAL_YAML

TEMPLATE = "[composite]Two panels.\n[marked]Outlined.\n[crop]A crop.\n[coordinates]Box {box}.\nIt is {subject}."


def _image(colour=(0, 0, 255)) -> Image.Image:
    """400x200: left half `colour` (blue), right half green, a white square at (300..340, 50..90)."""
    image = Image.new("RGB", (400, 200), colour)
    image.paste((0, 255, 0), (200, 0, 400, 200))
    image.paste((255, 255, 255), (300, 50, 340, 90))
    return image


def _cfg(**changes) -> RegionsConfig:
    return dataclasses.replace(RegionsConfig(), **changes)


def test_prompt_keeps_the_lines_of_the_view_and_fills_placeholders():
    box = [0.1, 0.25, 0.5, 0.755]
    assert render_prompt(TEMPLATE, "composite", False, "a red car", box) == "Two panels.\nIt is a red car."
    assert render_prompt(TEMPLATE, "crop", True, "a dog", box) == "A crop.\nBox (100,250),(500,755).\nIt is a dog."
    assert box_coordinates([0.0, -0.1, 1.2, 0.5004]) == "(0,0),(1000,500)"


def test_the_shipped_region_prompt_renders_for_every_view():
    prompt = load_prompt(LOCAL_YAML.parent / "prompts", "region_context/v1")
    for view in ("composite", "marked", "crop"):
        text = render_prompt(prompt.text, view, True, "a red car", [0, 0, 1, 1])
        assert "[" not in text and "{" not in text and "a red car" in text and "(0,0),(1000,1000)" in text
    assert "(0,0),(1000,1000)" not in render_prompt(prompt.text, "composite", False, "x", [0, 0, 1, 1])


def test_crop_is_cut_from_the_original_with_padding():
    crop = crop_region(_image(), [0.75, 0.25, 0.85, 0.45], padding=0.25)
    assert crop.size == (60, 60)  # 40 px box + 10 px each side
    assert crop.getpixel((30, 30)) == (255, 255, 255) and crop.getpixel((2, 2)) == (0, 255, 0)


def test_composite_view_shows_the_outlined_whole_image_beside_the_crop():
    box = [0.75, 0.25, 0.85, 0.45]
    view = region_view(_image(), box, _cfg(view="composite", view_max_side=200))
    whole_w, whole_h = 200, 100  # the 400x200 image fitted in 200x200
    assert view.height == whole_h and view.width > whole_w + 2
    assert view.getpixel((150, 25)) == OUTLINE  # top-left corner of the outline at (150, 25)
    assert view.getpixel((50, 50)) == (0, 0, 255)  # the whole image, left half blue
    assert view.getpixel((view.width - whole_h // 2, whole_h // 2)) == (255, 255, 255)  # the crop, centred
    marked = region_view(_image(), box, _cfg(view="marked", view_max_side=200))
    assert marked.size == (200, 100) and marked.getpixel((150, 25)) == OUTLINE
    crop = region_view(_image(), box, _cfg(view="crop", view_max_side=200))
    assert crop.size == (200, 200) and crop.getpixel((100, 100)) == (255, 255, 255)


def test_the_whole_view_is_the_unmarked_image_the_same_for_every_region():
    """FineViT-VL's box -> caption view: the region is named by its box in the prompt only."""
    views = [region_view(_image(), box, _cfg(view="whole", view_max_side=200))
             for box in ([0.75, 0.25, 0.85, 0.45], [0.0, 0.0, 0.5, 0.5])]
    assert views[0].size == (200, 100) and views[0].tobytes() == views[1].tobytes()
    expected = _image()
    expected.thumbnail((200, 200))
    assert views[0].tobytes() == expected.tobytes()  # no outline drawn


def _region(bbox, origin, caption=None, text=None, phrase=None) -> dict:
    return {"bbox": bbox, "phrase": phrase, "category": phrase or "text", "score": 0.9, "origin": origin,
            "caption": caption, "caption_model": None, "ocr_text": text}


def _batch(documents: list[bool]) -> pa.Table:
    out = io.BytesIO()
    _image().save(out, format="PNG")
    regions = [
        _region([0.7, 0.2, 0.9, 0.5], "detector", phrase="white square"),
        _region([0.0, 0.0, 0.4, 0.4], "detector", caption="already written"),
        _region([0.1, 0.6, 0.3, 0.7], "ocr", text="OPEN"),
    ]
    n = len(documents)
    return pa.table({"key": [f"k{i}" for i in range(n)], "image_bytes": pa.array([out.getvalue()] * n, pa.binary()),
                     "regions": pa.array([regions] * n, regions_type()), "ocr_document": documents})


@pytest.mark.slow
def test_stage_captions_every_region_with_provenance(vllm_engine):
    config = load_config(LOCAL_YAML, ["regions.captioner.max_tokens=8", "regions.caption_ocr_regions=true"])
    stage = RegionsStage(config, engine=vllm_engine)
    scene, document = stage(_batch([False, True])).to_pylist()
    vlm = f"tiny:vlm-a@{vllm_engine.revision}"
    assert scene["regions"][0]["caption"] and scene["regions"][0]["caption_model"] == vlm
    assert scene["regions"][1]["caption"] == "already written" and scene["regions"][1]["caption_model"] is None
    assert scene["regions"][2]["caption"] and scene["regions"][2]["caption_model"] == vlm  # scene text: the VLM
    assert document["regions"][2]["caption"] == "OPEN"  # a document's lines are captioned with their text
    assert document["regions"][2]["caption_model"].startswith("PP-OCRv4@")
    assert scene["reject_stage"] is None and document["reject_stage"] is None
    captions = [r["caption"] for row in (scene, document) for r in row["regions"]]
    assert not any(ch < " " and ch not in "\n\t" for text in captions for ch in text)  # no control characters
    assert scene["regions"][0]["bbox"] == pytest.approx([0.7, 0.2, 0.9, 0.5])


@pytest.mark.slow
def test_ocr_regions_skip_the_vlm_by_default_and_calls_can_be_small(vllm_engine):
    config = load_config(LOCAL_YAML, ["regions.captioner.max_tokens=4", "regions.coordinates=true",
                                      "regions.requests_per_call=1"])
    (row,) = RegionsStage(config, engine=vllm_engine)(_batch([False])).to_pylist()
    assert row["regions"][2]["caption"] == "OPEN" and row["regions"][2]["caption_model"].startswith("PP-OCRv4@")
    assert row["regions"][0]["caption_model"].startswith("tiny:vlm-a@")


class ScriptedEngine(VisionLanguageEngine):
    """Answers request i with generation i of a script and records every prompt it was given."""

    model, revision = "tiny:vlm-a", "sha256:script"

    def __init__(self, answers: list[Generation]):
        self.answers, self.prompts = list(answers), []

    def generate(self, images, prompts, sampling):
        assert len(images) == len(prompts)
        self.prompts += prompts
        return [self.answers.pop(0) for _ in prompts]


def _said(text: str, error: str | None = None) -> Generation:
    return Generation(text, len(text.split()), "stop", error)


def test_ocr_regions_take_their_text_by_default_with_no_engine_request():
    engine = ScriptedEngine([_said("A white square on green.")] * 2)
    scene, document = RegionsStage(load_config(LOCAL_YAML), engine=engine)(_batch([False, True])).to_pylist()
    assert len(engine.prompts) == 2 and all("white square" in p for p in engine.prompts)  # region 0 of each row
    for row in (scene, document):
        assert row["regions"][2]["caption"] == "OPEN" and row["regions"][2]["caption_model"].startswith("PP-OCRv4@")
        assert row["regions"][0]["caption"] == "A white square on green."
    assert row_counts(pa.Table.from_pylist([scene, document])) == {"region_caption_failures": {}}
    vlm = ScriptedEngine([_said("Red letters.")] * 3)
    config = load_config(LOCAL_YAML, ["regions.caption_ocr_regions=true"])
    scene, document = RegionsStage(config, engine=vlm)(_batch([False, True])).to_pylist()
    assert len(vlm.prompts) == 3 and 'text reading "OPEN"' in vlm.prompts[1]  # a document's lines: still text
    assert scene["regions"][2]["caption"] == "Red letters." and document["regions"][2]["caption"] == "OPEN"


def test_a_failed_generation_keeps_its_region_uncaptioned_and_is_counted_per_reason():
    boxes = [[0.1 * i, 0.1, 0.1 * i + 0.1, 0.3] for i in range(6)]
    regions = [_region(b, "detector", phrase=f"thing {i}") for i, b in enumerate(boxes)]
    regions.append(_region([0.1, 0.6, 0.3, 0.7], "ocr", text=None))  # a hand-made input's empty line
    batch = _batch([False, False])
    batch = batch.set_column(batch.column_names.index("regions"), "regions",
                             pa.array([regions, regions[:2]], regions_type()))
    answers = [_said("", "HTTP 500: internal error"), _said("  "), _said("\x1b" * 24),
               _said("I'm sorry, I can't see a region."), _said("A thing."), _said("\x1b\x1b"),
               _said("Another thing."), _said("", "deadline")]
    engine = ScriptedEngine(answers)
    first, second = RegionsStage(load_config(LOCAL_YAML), engine=engine)(batch).to_pylist()
    assert len(engine.prompts) == 8  # every detector region asked once; the OCR one not at all
    assert [r["caption"] for r in first["regions"]] == [None, None, None, None, "A thing.", None, None]
    assert [r["caption"] for r in second["regions"]] == ["Another thing.", None]
    kept = [v for r in first["regions"] for v in r["bbox"]]  # every box kept, in order
    assert kept == pytest.approx([v for b in [*boxes, [0.1, 0.6, 0.3, 0.7]] for v in b])
    assert all(r["caption_model"] is None for r in first["regions"] if r["caption"] is None)
    counts = row_counts(pa.Table.from_pylist([first, second]))["region_caption_failures"]
    assert counts == {"k0": {"empty_after_hygiene": 2, "empty_generation": 1, "engine_error": 1,
                             "no_ocr_text": 1, "refusal": 1},
                      "k1": {"engine_error": 1}}


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["regions.captioner=null"], "regions.captioner"),
        (["regions.captioner.prompt=region_context/v9"], "regions.captioner.prompt"),
        (["detect.enabled=false", "ocr.enabled=false"], "regions.enabled"),
        (["regions.view=panorama"], "regions.view"),
    ],
)
def test_region_config_errors_name_the_key(overrides, key):
    from finecap.config import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(LOCAL_YAML, overrides)


def test_coordinates_need_a_box_placeholder(tmp_path):
    from finecap.config import ConfigError

    prompts = tmp_path / "prompts"
    shutil.copytree(LOCAL_YAML.parent / "prompts", prompts)
    (prompts / "region_plain").mkdir()
    (prompts / "region_plain" / "v1.txt").write_text("Describe {subject}.")
    plain = ["regions.captioner.prompt=region_plain/v1", f"prompts_dir={prompts}"]
    assert load_config(LOCAL_YAML, plain).regions.coordinates is False
    with pytest.raises(ConfigError, match=r"regions\.coordinates: prompt region_plain/v1 has no \{box\}"):
        load_config(LOCAL_YAML, ["regions.coordinates=true", *plain])
