"""The regions stage with `regions.view: shared`: two images a request, the whole image first
and the same for every region of an image, the box in the prompt; and its config errors."""

from __future__ import annotations

import base64
import io
import shutil
from collections import Counter

import pyarrow as pa
import pytest
from PIL import Image

from finecap.config import ConfigError, load_config
from finecap.prompts import load_prompt
from finecap.stages.detect import regions_type
from finecap.stages.regions import RegionsStage, render_prompt
from tests.conftest import LOCAL_YAML
from tests.stages.openai_loopback import LoopbackChat

PROMPTS = LOCAL_YAML.parent / "prompts"


def _png(colour) -> bytes:
    image = Image.new("RGB", (400, 200), colour)
    image.paste((255, 255, 255), (300, 50, 340, 90))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _region(bbox, phrase) -> dict:
    return {"bbox": bbox, "phrase": phrase, "category": phrase, "score": 0.9, "origin": "detector",
            "caption": None, "caption_model": None, "ocr_text": None}


def _image_of(part: dict) -> bytes:
    return base64.b64decode(part["image_url"]["url"].split(",", 1)[1])


def test_the_shipped_region_prompt_renders_the_shared_view_and_keeps_v1s_other_views():
    v1, v2 = (load_prompt(PROMPTS, f"region_context/{v}").text for v in ("v1", "v2"))
    box = [0.1, 0.25, 0.5, 0.755]
    text = render_prompt(v2, "shared", False, "a red car", box)
    shared, between, region = text.split("{image}")
    assert "Describe that region" in shared and between.strip() == ""  # the whole image, then the crop
    assert region.strip() == "Box: (100,250),(500,755). Found as: a red car."  # all that differs per region
    assert render_prompt(v2, "shared", False, "{image}", box).count("{image}") == 2  # a subject adds no marker
    for view in ("composite", "marked", "crop"):  # the default's words are v1's, to the letter
        for coordinates in (False, True):
            assert render_prompt(v2, view, coordinates, "a car", box) == render_prompt(v1, view, coordinates, "a car", box)
    assert "(100,250),(500,755)" in render_prompt(v2, "whole", False, "a car", box)


def test_stage_sends_the_same_whole_image_first_for_every_region_of_an_image():
    chat = LoopbackChat()
    try:
        config = load_config(LOCAL_YAML, [f"regions.captioner={chat.captioner('tiny-regions', 'region_context/v2')}",
                                          "regions.view=shared"])
        regions = [_region([0.7, 0.2, 0.9, 0.5], "white square"), _region([0.0, 0.0, 0.4, 0.4], "blue corner"),
                   _region([0.1, 0.5, 0.3, 0.9], "blue floor")]
        batch = pa.table({"key": ["a", "b"], "image_bytes": pa.array([_png((0, 0, 255)), _png((0, 255, 0))]),
                          "regions": pa.array([regions, regions[:2]], regions_type()),
                          "ocr_document": [False, False]})
        rows = RegionsStage(config)(batch).to_pylist()
    finally:
        chat.close()
    assert [r["caption"] for row in rows for r in row["regions"]] == [chat.caption] * 5
    contents = [b["messages"][0]["content"] for b in chat.bodies]
    assert len(contents) == 5
    assert all([p["type"] for p in c] == ["text", "image_url", "image_url", "text"] for c in contents)
    per_whole = Counter(_image_of(c[1]) for c in contents)
    assert sorted(per_whole.values()) == [2, 3]  # one whole image per row, byte for byte, for its regions
    assert len({_image_of(c[2]) for c in contents}) == 5  # a crop per region
    assert all(c[0]["text"] == contents[0][0]["text"] for c in contents)  # the shared words lead every request
    assert sorted(c[3]["text"] for c in contents)[0] == "Box: (0,0),(400,400). Found as: blue corner."


def test_a_shared_view_needs_a_box_and_two_image_lines_in_its_prompt(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS, prompts)
    (prompts / "region_plain").mkdir()
    (prompts / "region_plain" / "v1.txt").write_text("[shared]{image}\n[shared]{image}\nDescribe {subject}.")
    (prompts / "region_plain" / "v2.txt").write_text("[shared]{image}\n[whole]Box {box}.\nDescribe {subject}.")
    (prompts / "region_plain" / "v3.txt").write_text("{image}\nBox {box}. Describe {subject}.")
    base = [f"prompts_dir={prompts}", "regions.view=shared"]
    for version, message in (("v1", r"'shared' names the region by its box, and prompt region_plain/v1 has no "
                                     r"\{box\}"),
                             ("v2", r"'shared' names the region by its box"),
                             ("v3", r"prompt region_plain/v3 needs 2 \{image\} line\(s\) for view 'shared', found 1")):
        with pytest.raises(ConfigError, match=r"^regions\.view: " + message):
            load_config(LOCAL_YAML, [*base, f"regions.captioner.prompt=region_plain/{version}"])
    with pytest.raises(ConfigError, match=r"^regions\.view: prompt region_context/v1 needs 2"):
        load_config(LOCAL_YAML, [*base, "regions.captioner.prompt=region_context/v1", "regions.coordinates=true"])
    with pytest.raises(ConfigError, match=r"^regions\.view: prompt region_plain/v3 needs 0 \{image\}"):
        load_config(LOCAL_YAML, [f"prompts_dir={prompts}", "regions.captioner.prompt=region_plain/v3"])
    assert load_config(LOCAL_YAML, ["regions.view=shared"]).regions.view == "shared"  # the shipped prompt
