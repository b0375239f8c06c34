"""Caption templates."""

from __future__ import annotations

from finecap.samples import captions


def test_global_caption_of_a_plain_background():
    text = captions.global_caption(
        captions.background_phrase("plain", ["navy"], None),
        ["a large red circle in the top left", "a small white star at the bottom"],
        [captions.word_sentence("garden", "yellow", "in the centre", tilted=True)],
    )
    assert text == (
        "A navy background with two shapes: a large red circle in the top left and a small white "
        "star at the bottom. The word 'garden' is written in yellow in the centre, slightly tilted."
    )


def test_global_caption_of_a_gradient_and_lists():
    background = captions.background_phrase("gradient", ["cream", "light blue"], "horizontal")
    assert background == "A background fading from cream on the left to light blue on the right"
    text = captions.global_caption(background, ["a", "b", "c"], [])
    assert text == f"{background}, with three shapes: a, b and c."
    assert captions.global_caption("A navy background", [], []) == "A navy background with no shapes."
    assert captions.count_phrase(1, "shape") == "one shape"
    assert captions.count_phrase(12, "shape") == "12 shapes"


def test_articles_follow_the_first_sound():
    assert captions.with_article("orange star") == "an orange star"
    assert captions.with_article("red circle") == "a red circle"
    assert captions.object_caption("large", "olive", "square", "on the left") == "a large olive square on the left"
