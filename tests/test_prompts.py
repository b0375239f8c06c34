"""Prompt files: region templates per view, and FineViT-VL's prompt files equal to its stage III tasks."""

from __future__ import annotations

import pytest

from finecap.box_format import format_box
from finecap.prompts import load_prompt, region_template
from finecap.train.tasks import PROMPTS
from tests.conftest import REPO

TEMPLATE = "[composite]Two panels.\n[whole]The whole image.\n[coordinates]Box {box}.\nDescribe {subject}."


@pytest.mark.parametrize(("view", "coordinates", "expected"), [
    ("composite", False, "Two panels.\nDescribe {subject}."),
    ("whole", True, "The whole image.\nBox {box}.\nDescribe {subject}."),
    ("crop", False, "Describe {subject}."),
])
def test_a_region_template_keeps_the_lines_of_its_view(view, coordinates, expected):
    assert region_template(TEMPLATE, view, coordinates) == expected


SHARED = ("[shared]Words for all.\n[shared]{image}\n[shared|whole]Box {box}.\n[composite|crop][coordinates]At {box}.\n"
          "[bogus]Kept as written.")


@pytest.mark.parametrize(("view", "coordinates", "expected"), [
    ("shared", False, "Words for all.\n{image}\nBox {box}.\n[bogus]Kept as written."),
    ("whole", True, "Box {box}.\n[bogus]Kept as written."),
    ("crop", True, "At {box}.\n[bogus]Kept as written."),
    ("crop", False, "[bogus]Kept as written."),
    ("marked", True, "[bogus]Kept as written."),
])
def test_tags_may_name_several_views_and_combine_with_coordinates(view, coordinates, expected):
    assert region_template(SHARED, view, coordinates) == expected


def test_finevits_prompt_files_are_its_stage_iii_task_prompts():
    """The pipeline's prompts for an exported FineViT-VL must be the trained ones, character for
    character: a paraphrase is a prompt the model never saw."""
    prompts = REPO / "pipelines" / "prompts"
    box = [0.1, 0.2, 0.3, 0.4]
    assert load_prompt(prompts, "finevit_caption/v1").text == PROMPTS["global_caption"]
    region = load_prompt(prompts, "finevit_region/v1").text
    assert region.replace("<|box_start|>{box}<|box_end|>", format_box(box)) == PROMPTS["box_to_caption"].format(
        box=format_box(box))
    ground = load_prompt(prompts, "finevit_ground/v1").text
    assert ground.replace("{phrase}", "a red circle") == PROMPTS["caption_to_box"].format(caption="a red circle")
