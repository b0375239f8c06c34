"""OCR word scores on hand-built words whose precision, recall and CER are worked out below."""

from __future__ import annotations

import pytest

from finecap.quality.ocr_metrics import OcrScore, aggregate_ocr, edit_distance, normalise, score_ocr
from finecap.quality.truth import TruthImage, TruthText

# Word boxes on a 100 x 100 image, pixels; none overlaps another.
A, B, C = (0, 0, 20, 10), (30, 0, 60, 10), (0, 50, 40, 60)


def word(text: str, box, legible: bool = True) -> TruthText:
    return TruthText(text, tuple(float(v) for v in box), legible)


def image(*texts: TruthText) -> TruthImage:
    return TruthImage(1, "1.png", 100, 100, texts=list(texts))


def read(text: str | None, box, origin: str = "ocr") -> dict:
    x1, y1, x2, y2 = box
    return {"bbox": [x1 / 100, y1 / 100, x2 / 100, y2 / 100], "ocr_text": text, "origin": origin,
            "score": 0.9, "category": "text"}


@pytest.mark.parametrize("a, b, distance", [
    ("kitten", "sitting", 3),  # k->s, e->i, +g
    ("flaw", "lawn", 2),  # -f, +n
    ("", "abc", 3), ("abc", "", 3), ("same", "same", 0), ("ab", "ba", 2),
])
def test_edit_distance(a, b, distance):
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


def test_normalise_casefolds_and_strips_edge_punctuation_only():
    assert normalise("  STOP! ") == "stop"
    assert normalise("«Straße»") == "strasse"  # casefold: ß -> ss
    assert normalise("don't") == "don't"
    assert normalise("ﬁre") == "fire"  # NFKC: the ligature is two letters


def test_all_words_read_right():
    score = score_ocr(image(word("OPEN", A), word("cafe", B)), [read("open", A), read("Cafe.", B)])
    assert score == OcrScore(truth_words=2, predicted_words=2, ignored=0, box_matches=2, word_matches=2,
                             truth_chars=8, char_errors=0)
    result = aggregate_ocr([score])
    assert (result["precision"], result["recall"], result["f1"], result["cer"]) == (1.0, 1.0, 1.0, 0.0)


def test_misread_word_is_a_box_match_not_a_word_match():
    # "hello" read as "hallo": box found, text wrong -> word P = R = 0, box P = R = 1, CER = 1/5.
    result = aggregate_ocr([score_ocr(image(word("hello", A)), [read("hallo", A)])])
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, 0.0)
    assert (result["box_precision"], result["box_recall"]) == (1.0, 1.0)
    assert result["cer"] == pytest.approx(1 / 5)


def test_missed_word_and_misplaced_prediction():
    # Truth "cat" (A) and "dog" (B); predictions "cat" on A and "dog" on C (IoU 0 with B).
    # TP 1 of 2 predicted, 1 of 2 truth -> P = R = F1 = 0.5. CER: "cat" matched (0 errors),
    # "dog" unmatched (3 characters) over 6 truth characters -> 0.5.
    score = score_ocr(image(word("cat", A), word("dog", B)), [read("cat", A), read("dog", C)])
    result = aggregate_ocr([score])
    assert (result["precision"], result["recall"], result["f1"]) == (0.5, 0.5, 0.5)
    assert (result["box_precision"], result["box_recall"]) == (0.5, 0.5)
    assert result["cer"] == pytest.approx(0.5)


def test_iou_threshold_is_half():
    # Truth box 20 x 10 = 200 px. A prediction covering x 0..14 (140 px inside it): IoU 0.7, a
    # match; one covering x 0..8 (80 px): IoU 0.4, no match.
    truth = image(word("go", A))
    assert score_ocr(truth, [read("go", (0, 0, 14, 10))]).word_matches == 1
    assert score_ocr(truth, [read("go", (0, 0, 8, 10))]).word_matches == 0


def test_matching_is_one_to_one():
    # Two predictions on one word: the better box (IoU 1) matches, the other (IoU 0.75) is a
    # false positive -> P = 1/2, R = 1.
    result = aggregate_ocr([score_ocr(image(word("exit", A)), [read("exit", (0, 0, 15, 10)), read("exit", A)])])
    assert (result["precision"], result["recall"]) == (0.5, 1.0)


def test_predictions_on_illegible_words_are_ignored():
    # The illegible word is not truth: a prediction on it is neither right nor wrong, and it
    # is left out of predicted_words. The legible "sale" read right -> P = R = 1.
    truth = image(word("sale", A), word("xq#", B, legible=False))
    score = score_ocr(truth, [read("sale", A), read("xyz", B)])
    assert (score.truth_words, score.predicted_words, score.ignored) == (1, 1, 1)
    result = aggregate_ocr([score])
    assert (result["precision"], result["recall"], result["cer"]) == (1.0, 1.0, 0.0)


def test_only_ocr_regions_with_text_are_predictions():
    regions = [read("", A), read(None, A), read("  ", A), read("bus", A, origin="detector"),
               {"bbox": None, "ocr_text": "bus", "origin": "ocr"}]
    score = score_ocr(image(word("bus", A)), regions)
    assert (score.predicted_words, score.box_matches) == (0, 0)
    assert score.char_errors == 3  # the missed word, all of it
    assert score_ocr(image(word("bus", A)), None).predicted_words == 0


def test_aggregate_sums_counts_over_images():
    # Image 1: 1 truth word read right. Image 2: 3 truth words, one read "bxd" for "bad"
    # (1 error), two missed ("ok" 2 + "yes" 3 characters), one stray prediction.
    # Words: TP 1, predicted 1 + 2 = 3, truth 4 -> P = 1/3, R = 1/4, F1 = 2PR/(P+R) = 2/7.
    # CER = (0 + 1 + 2 + 3) / (4 + 3 + 2 + 3) = 6/12 = 0.5.
    first = score_ocr(image(word("taxi", A)), [read("taxi", A)])
    second = score_ocr(image(word("bad", A), word("ok", B), word("yes", C)),
                       [read("bxd", A), read("zzz", (70, 70, 90, 90))])
    result = aggregate_ocr([first, second])
    assert (result["images"], result["truth_words"], result["predicted_words"]) == (2, 4, 3)
    assert result["precision"] == pytest.approx(1 / 3)
    assert result["recall"] == pytest.approx(1 / 4)
    assert result["f1"] == pytest.approx(2 / 7)
    assert result["box_precision"] == pytest.approx(2 / 3)
    assert result["box_recall"] == pytest.approx(2 / 4)
    assert result["cer"] == pytest.approx(0.5)


def test_nothing_to_measure_is_none():
    empty = aggregate_ocr([])
    assert empty["images"] == 0
    assert all(empty[k] is None for k in ("precision", "recall", "f1", "box_precision", "box_recall", "cer"))
    # Predictions but no truth text: precision 0 (every word is wrong), recall and CER unmeasured.
    stray = aggregate_ocr([score_ocr(image(), [read("abc", A)])])
    assert (stray["precision"], stray["recall"], stray["f1"], stray["cer"]) == (0.0, None, None, None)
