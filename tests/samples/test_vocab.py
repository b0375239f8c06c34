"""The vocabulary's promises: legible text colours, distinct words, positions on a 3x3 grid."""

from __future__ import annotations

import itertools

from finecap.samples import vocab


def _luminance(rgb: tuple[int, int, int]) -> float:
    def linear(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = map(linear, rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_every_text_colour_meets_wcag_aa_on_every_background_of_its_family():
    for texts, backgrounds in (
        (vocab.TEXT_ON_LIGHT, vocab.LIGHT_BACKGROUNDS),
        (vocab.TEXT_ON_DARK, vocab.DARK_BACKGROUNDS),
    ):
        for (text, fg), (name, bg) in itertools.product(texts.items(), backgrounds.items()):
            assert _contrast(fg, bg) >= 4.5, (text, name, _contrast(fg, bg))


def test_words_are_unique_common_and_of_4_to_10_letters():
    assert len(vocab.WORDS) == len(set(vocab.WORDS)) >= 100
    for word in vocab.WORDS:
        assert word.isascii() and word.isalpha() and word.islower() and 4 <= len(word) <= 10
        assert word[0] not in "il"
        assert set(word) - set("cosvwxz"), word


def test_cases_and_positions():
    assert [vocab.apply_case("garden", c) for c in vocab.CASES] == ["garden", "GARDEN", "Garden"]
    assert vocab.position_of((0, 0, 10, 10), 300, 300) == ("top left", "in the top left")
    assert vocab.position_of((140, 140, 160, 160), 300, 300) == ("centre", "in the centre")
    assert vocab.position_of((250, 120, 300, 180), 300, 300) == ("right", "on the right")
    assert vocab.position_of((100, 290, 200, 300), 300, 300) == ("bottom", "at the bottom")
