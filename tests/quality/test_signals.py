"""The quality signals' rules on hand-built rows with answers worked out by hand."""

from __future__ import annotations

import pytest

from finecap.config_quality import QualityConfig
from finecap.quality.signals import (
    FLAGS,
    broken_thresholds,
    caption_phrases,
    names,
    quoted,
    region_agreement,
    repetition,
    row_signals,
)

PHRASES = [{"phrase": "red square", "category": "square"}, {"phrase": "blue circle", "category": "circle"},
           {"phrase": "tree", "category": "tree"}, {"phrase": "small star", "category": "star"}]
DETECTED = [
    {"origin": "detector", "phrase": "red square", "category": "square", "score": 0.9, "caption": None},
    # Grounds "small star" through its category: NMS kept the box of the other phrase "star".
    {"origin": "detector", "phrase": "star", "category": "star", "score": 0.4, "caption": None},
]


def test_repetition_counts_repeated_trigrams():
    assert repetition("a red square next to a blue circle") == 0.0
    # 8 words -> 6 trigrams: (a red a) (red a red) (a red a) (red a red) (a red a) (red a red): 2 distinct
    assert repetition("a red a red a red a red") == pytest.approx(1 - 2 / 6)
    assert repetition("two words") == 0.0  # no trigram at all


def test_quotes_and_names():
    assert quoted('A sign reads "Open Daily" and \'dance\', the cat\'s bowl.') == ["open daily", "dance"]
    assert quoted("“Café” and ‘exit’") == ["café", "exit"]
    assert names("Three red squares sit here", "red square")  # plural of the last word
    assert names("two boxes", "box") and names("berries", "berry")
    assert not names("a redsquare", "red square") and not names("concatenate", "cat")
    assert [p["phrase"] for p in caption_phrases("A tree and a red square.", PHRASES)] == ["red square", "tree"]


def test_region_agreement():
    assert region_agreement({"origin": "detector", "category": "square", "phrase": "red square",
                             "caption": "A red square on grey."}) is True
    assert region_agreement({"origin": "detector", "category": "square", "phrase": "red square",
                             "caption": "a cat"}) is False
    assert region_agreement({"origin": "detector", "category": "square", "caption": None}) is None
    # OCR regions: a caption that quotes the text agrees; the text itself is not judged.
    assert region_agreement({"origin": "ocr", "ocr_text": "DANCE", "caption": "The word dance in white."}) is True
    assert region_agreement({"origin": "ocr", "ocr_text": "DANCE", "caption": "A bird."}) is False
    assert region_agreement({"origin": "ocr", "ocr_text": "DANCE", "caption": "Dance"}) is None


def test_row_signals_worked_by_hand():
    captions = [{"text": 'A red square, a tree and a small star; a sign says "dance".'},
                {"text": "a blue circle"}]
    regions = DETECTED + [
        {"origin": "ocr", "ocr_text": "DANCE", "caption": "The word dance.", "score": 0.9},
        {"origin": "ocr", "ocr_text": "Bread Shop", "caption": None, "score": 0.9},
    ]
    row, per_caption, agreements = row_signals(captions, PHRASES, regions, detected=True, ocr_ran=True,
                                               min_score=0.5)
    # Caption 1 mentions red square (box 0.9), tree (none), small star (box 0.4 < 0.5): 1 of 3.
    assert per_caption[0]["phrases"] == 3 and per_caption[0]["grounded_phrases"] == 1
    assert per_caption[0]["grounding_rate"] == pytest.approx(1 / 3)
    assert per_caption[0]["quotes"] == 1 and per_caption[0]["quotes_supported"] == 1
    assert per_caption[1] == {"words": 3, "repetition": 0.0, "phrases": 1, "grounded_phrases": 0,
                              "grounding_rate": 0.0, "quotes": 0, "quotes_supported": 0}
    # The image's 4 phrases: only "red square" is grounded at >= 0.5.
    assert (row["phrases"], row["grounded_phrases"], row["grounding_rate"]) == (4, 1, 0.25)
    # OCR words dance, bread, shop: only "dance" appears in a caption.
    assert row["ocr_ignored"] == pytest.approx(2 / 3) and row["ocr_quote_support"] == 1.0
    assert (row["min_caption_words"], row["max_caption_words"]) == (3, 13)
    assert agreements == [None, None, True, None] and row["region_agreement"] == 1.0


def test_signals_of_stages_that_did_not_run_are_null():
    row, per_caption, _ = row_signals([{"text": 'it says "hi"'}], None, [], detected=False, ocr_ran=False,
                                      min_score=0.0)
    assert row["phrases"] is None and row["grounding_rate"] is None
    assert row["ocr_quote_support"] is None and row["ocr_ignored"] is None and row["region_agreement"] is None
    assert per_caption[0]["quotes_supported"] is None and per_caption[0]["grounding_rate"] is None
    assert broken_thresholds(row, QualityConfig()) == []  # nothing measured breaks nothing


def test_thresholds_name_the_key_and_can_be_turned_off():
    row = {"grounding_rate": 0.1, "repetition": 0.5, "min_caption_words": 2, "max_caption_words": 90,
           "ocr_quote_support": 0.0, "ocr_ignored": 0.9, "region_agreement": 0.2}
    cfg = QualityConfig(max_caption_words=80, max_ocr_ignored=0.5)
    broken = broken_thresholds(row, cfg)
    assert [flag for flag, _ in broken] == list(FLAGS)
    assert broken[0][1] == "grounding_rate 0.1 < quality.min_grounding_rate=0.25"
    off = QualityConfig(min_grounding_rate=None, max_repetition=None, min_caption_words=None,
                        min_ocr_quote_support=None, min_region_agreement=None)
    assert broken_thresholds(row, off) == []
