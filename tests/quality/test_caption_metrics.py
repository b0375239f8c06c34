import pytest

from finecap.quality.caption_metrics import aggregate_captions, distinct_n, score_caption
from finecap.quality.truth import TruthImage, TruthObject, TruthText
from finecap.quality.vocabulary import Vocabulary
from finecap.samples.source import scene_record
from finecap.samples.vocab import OBJECT_COLOURS, SHAPES


def _image(objects=(), texts=()) -> TruthImage:
    return TruthImage(1, "a.png", 200, 100, None, list(objects), list(texts))


def _obj(category, colour=None, crowd=False) -> TruthObject:
    return TruthObject(category, (0, 0, 10, 10), {"colour": colour} if colour else {}, crowd)


VOCAB = Vocabulary.build({"circle": ["disc"], "square": [], "star": [], "triangle": [], "cat": [], "person": []},
                         ["red", "blue", "green"])
IMAGE = _image(
    [_obj("circle", "red"), _obj("circle", "blue"), _obj("square", "green"), _obj("star")],
    [TruthText("SALE", (0, 0, 5, 5)), TruthText("Open Now", (5, 5, 9, 9)),
     TruthText("xx", (0, 0, 1, 1), legible=False), TruthText("sale", (9, 9, 12, 12))],
)  # fmt: skip
# Present: circle, square, star; truth pairs (red, circle), (blue, circle), (green, square);
# distinct legible words: "sale", "open now" (two SALE signs are one word to read).
#
#            mentions           obj TP FP FN  pairs judged           attr TP FP FN  words  counts right/stated
# c1  circle square star            3  0  0  red/blue circle, green sq   3  0  0   1/2    circle 2, square 1, star 1: 3/3
# c2  square triangle cat           1  2  2  (blue, square)              0  1  3   0/2    square 3, triangle 1, cat 1: 0/3
# c3  triangle ("no cats": none)    0  1  3  (red, triangle) not judged  0  0  3   1/2    cat 0 right, triangle 1: 1/2
# sum                               4  3  5                              3  1  6   2/6    4/8
# precision 4/7, recall 4/9, f1 8/16; CHAIR_s 2/3 (c2, c3); attribute P 3/4, R 3/9
CAPTIONS = [
    "A red circle and a blue circle beside a green square and a star; a sign reads SALE.",  # 18 words
    "Three blue squares and a triangle near a cat.",  # 9 words
    "The shop is open now, with no cats; a red triangle.",  # 11 words
]


def test_a_hand_worked_precision_recall_table():
    scores = [score_caption(text, IMAGE, VOCAB) for text in CAPTIONS]
    assert [(s.object_tp, s.object_fp, s.object_fn) for s in scores] == [(3, 0, 0), (1, 2, 2), (0, 1, 3)]
    assert [(s.attribute_tp, s.attribute_fp, s.attribute_fn) for s in scores] == [(3, 0, 0), (0, 1, 3),
                                                                                  (0, 0, 3)]
    assert [(s.words_found, s.truth_words) for s in scores] == [(1, 2), (0, 2), (1, 2)]
    assert [(s.counts_right, s.counts_stated) for s in scores] == [(3, 3), (0, 3), (1, 2)]
    assert [s.words for s in scores] == [18, 9, 11]
    assert scores[1].absent == ("cat", "triangle")
    result = aggregate_captions(scores, CAPTIONS)
    expected = {
        "captions": 3, "precision": 4 / 7, "recall": 4 / 9, "f1": 0.5, "hallucination_rate": 2 / 3,
        "attribute_precision": 3 / 4, "attribute_recall": 1 / 3, "word_recall": 1 / 3,
        "count_accuracy": 0.5, "mean_words": 38 / 3,
    }  # fmt: skip
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key
    assert result["distinct_1"] == pytest.approx(distinct_n(CAPTIONS, 1))


def _scene_truth(record: dict) -> TruthImage:
    """A scene's record as truth, by hand: shapes with colour and size, words as legible text."""
    objects = [TruthObject(o["shape"], tuple(o["bbox_px"]), {"colour": o["colour"], "size": o["size"]})
               for o in record["objects"]]
    texts = [TruthText(w["text"], tuple(w["bbox_px"])) for w in record["words"]]
    return TruthImage(0, record["file_name"], record["width"], record["height"], record["file_name"],
                      objects, texts, [record["caption"]])


def test_a_synthetic_scenes_own_caption_scores_perfectly():
    vocab = Vocabulary.build({shape: [] for shape in SHAPES}, OBJECT_COLOURS)
    records = [scene_record(index)[1] for index in range(12)]
    # the scenes tested include a repeated shape (the counts add up) and several words
    assert any(len({o["shape"] for o in r["objects"]}) < len(r["objects"]) for r in records)
    assert any(len(r["words"]) > 1 for r in records)
    scores = [score_caption(r["caption"], _scene_truth(r), vocab) for r in records]
    result = aggregate_captions(scores, [r["caption"] for r in records])
    for key in ("precision", "recall", "f1", "attribute_precision", "attribute_recall", "word_recall",
                "count_accuracy"):
        assert result[key] == 1.0, (key, result)
    assert result["hallucination_rate"] == 0.0
    assert sum(s.counts_stated for s in scores) == sum(len({o["shape"] for o in r["objects"]}) for r in records)


def test_a_category_written_in_the_image_is_read_not_hallucinated():
    image = _image([_obj("square", "red")], [TruthText("CIRCLE", (0, 0, 5, 5))])
    read = score_caption("One shape: a red square. Words: CIRCLE.", image, VOCAB)
    assert (read.object_tp, read.object_fp, read.words_found) == (1, 0, 1)
    unwritten = score_caption("A red square and a circle.", _image([_obj("square", "red")]), VOCAB)
    assert (unwritten.object_tp, unwritten.object_fp) == (1, 1)


def test_counts_of_a_crowd_category_are_not_judged():
    image = _image([_obj("person", crowd=True), _obj("cat")])
    score = score_caption("two people and a cat", image, VOCAB)
    assert (score.object_tp, score.counts_stated, score.counts_right) == (2, 1, 1)


def test_empty_denominators_are_none_not_zero():
    empty = aggregate_captions([], [])
    assert empty["captions"] == 0
    assert all(value is None for key, value in empty.items() if key != "captions")
    vague = aggregate_captions([score_caption("A photo.", _image([_obj("circle")]), VOCAB)], ["A photo."])
    assert (vague["precision"], vague["recall"], vague["f1"]) == (None, 0.0, 0.0)
    assert (vague["hallucination_rate"], vague["count_accuracy"], vague["word_recall"]) == (0.0, None, None)
    assert vague["attribute_precision"] is None and vague["attribute_recall"] is None


def test_distinct_n():
    assert distinct_n(["a b a b", "A b."], 1) == pytest.approx(2 / 6)
    assert distinct_n(["a b a b", "A b."], 2) == pytest.approx(2 / 4)  # (a b) x3, (b a) x1
    assert distinct_n(["a", "a"], 2) is None  # n-grams never span two captions
    assert distinct_n([], 1) is None
