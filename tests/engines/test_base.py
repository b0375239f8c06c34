"""The engine interface's multi-image requests: where each image goes in the prompt."""

from __future__ import annotations

import pytest
from PIL import Image

from finecap.engines.base import images_in, interleave
from finecap.prompts import IMAGE_MARKER

A, B = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))


def test_one_image_comes_before_its_prompt_unchanged():
    assert interleave(A, f"  Describe {IMAGE_MARKER} as is. ") == [A, f"  Describe {IMAGE_MARKER} as is. "]
    assert images_in(A) == 1 and images_in((A, B)) == 2


def test_a_tuple_of_images_goes_where_the_markers_are():
    prompt = f"Shared words.\n{IMAGE_MARKER}\n{IMAGE_MARKER}\nBox: (1,2),(3,4)."
    assert interleave((A, B), prompt) == ["Shared words.", A, B, "Box: (1,2),(3,4)."]
    assert interleave((A, B), f"{IMAGE_MARKER} first {IMAGE_MARKER}") == [A, "first", B]


@pytest.mark.parametrize("markers", [0, 1, 3])
def test_a_tuple_needs_one_marker_per_image(markers):
    with pytest.raises(ValueError, match="2 images needs 2"):
        interleave((A, B), " and ".join(["text"] + [IMAGE_MARKER] * markers))
