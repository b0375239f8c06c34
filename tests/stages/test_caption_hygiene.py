import pytest

from finecap.config import HygieneConfig
from finecap.stages.caption_hygiene import caption_or_reason, clean_caption, degenerate_reason, repetition

GOOD = (
    "A large red circle sits in the top left corner of a pale blue background, next to a small "
    "green triangle. The word garden is written in black letters below them."
)


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Assistant: A red square.<end_of_utterance>", "A red square."),
        ("<|im_start|>assistant\nA dog.<|im_end|>", "assistant\nA dog."),
        ("**Caption:** A cat on a mat.", "A cat on a mat."),
        ('"A boat at sea."', "A boat at sea."),
        ("  Description:   two   birds  ", "two birds"),
        ("a red\x1b[0m ball\x07", "a red[0m ball"),
    ],
)
def test_clean_caption_strips_chat_artefacts(raw, clean):
    assert clean_caption(raw) == clean


@pytest.mark.parametrize(
    "text, finish, reason",
    [
        ("", "stop", "empty"),
        ("I'm sorry, but I can't help with that image.", "stop", "refusal"),
        ("As an AI language model I cannot see images.", "stop", "refusal"),
        ("a red ball " * 30, "length", "repetition"),
        ("the cat sat on the mat and the dog sat on the log and then " * 6, "stop", "repetition"),
        (GOOD + " Behind them a yellow star fills the lower", "length", "truncated"),
        ("A cat.", "stop", "too_short"),
        (GOOD, "stop", None),
        (GOOD, "length", None),  # hit the limit but ended a sentence
    ],
)
def test_degenerate_outputs_are_named(text, finish, reason):
    assert degenerate_reason(text, finish, HygieneConfig()) == reason


def test_checks_can_be_switched_off():
    loose = HygieneConfig(check_repetition=False, check_truncation=False, min_chars=1)
    assert degenerate_reason("a red ball " * 30, "length", loose) is None
    assert degenerate_reason("", "stop", HygieneConfig(enabled=False)) == "empty"


def test_repetition_is_low_for_prose_and_high_for_loops():
    assert repetition(GOOD) < 0.2
    assert repetition("rolight movingx " * 8) > 0.9


@pytest.mark.parametrize(
    "raw, result",
    [
        ("Assistant: A red square.", ("A red square.", None)),
        ("", ("", "empty_generation")),
        (" \n\t ", ("", "empty_generation")),
        ("\x1b" * 24, ("", "empty_after_hygiene")),  # what the tiny VLM wrote for the sample's 5
        ("<end_of_utterance>", ("", "empty_after_hygiene")),
        ('**Caption:** ""', ("", "empty_after_hygiene")),
        ("I'm sorry, I cannot see the outlined region.", ("", "refusal")),
        ("Sorry, the box is empty.", ("", "refusal")),
        ("A sorry-looking dog.", ("A sorry-looking dog.", None)),
    ],
)
def test_caption_or_reason_says_why_a_generation_gives_no_caption(raw, result):
    assert caption_or_reason(raw) == result
