import pytest

from finecap.quality.region_metrics import aggregate_region_captions, score_region_captions
from finecap.quality.truth import TruthImage, TruthObject
from finecap.quality.vocabulary import Vocabulary
from finecap.samples.source import scene_record
from finecap.samples.vocab import OBJECT_COLOURS, SHAPES

VOCAB = Vocabulary.build({"circle": ["disc"], "square": [], "star": [], "person": []}, ["red", "blue", "green"])
# 200 x 100 px: boxes in a row's [0, 1] units are x / 200, y / 100
IMAGE = TruthImage(1, "a.png", 200, 100, None, [
    TruthObject("square", (0, 0, 40, 40), {"colour": "red"}),
    TruthObject("circle", (100, 50, 140, 90), {"colour": "blue"}),
    TruthObject("star", (150, 0, 190, 40)),
    TruthObject("person", (0, 50, 80, 100), iscrowd=True),
])  # fmt: skip
SQUARE, CIRCLE, STAR, CROWD = [0.0, 0.0, 0.2, 0.4], [0.5, 0.5, 0.7, 0.9], [0.75, 0.0, 0.95, 0.4], [0.0, 0.5, 0.4, 1.0]


def _region(bbox, caption, origin="detector") -> dict:
    return {"bbox": bbox, "caption": caption, "origin": origin, "category": "thing", "phrase": "thing"}


def test_hand_built_regions():
    regions = [
        _region(SQUARE, "a small red square"),  # category right, colour right
        _region([0.5, 0.5, 0.68, 0.88], "a green disc"),  # IoU 0.86 with the circle: category right, colour wrong
        _region(STAR, "a blue circle"),  # the star has no colour: category wrong, colour not judged
        _region(CROWD, "a crowd of people"),  # a crowd box is never matched
        _region([0.3, 0.0, 0.45, 0.3], "a red square"),  # covers nothing
        _region(SQUARE, None),  # no caption: not counted
        _region(CIRCLE, "a blue circle", origin="ocr"),  # not a detector region
        {"bbox": CIRCLE, "origin": "detector"},  # an older shard's region without a caption key
    ]
    scores = score_region_captions(regions, IMAGE, VOCAB)
    assert scores.regions == 5
    assert [(m.region, m.object, m.category_right, m.colour_right) for m in scores.matches] == [
        (0, 0, True, True), (1, 1, True, False), (2, 2, False, None)]
    assert scores.matches[1].iou == pytest.approx((36 * 38) / (40 * 40))
    assert aggregate_region_captions([scores]) == {
        "regions": 5, "matched": 3, "category_accuracy": 2 / 3, "colour_accuracy": 1 / 2}


def test_a_colour_bound_to_another_object_of_the_category_is_wrong():
    def colour_right(caption):
        return score_region_captions([_region(SQUARE, caption)], IMAGE, VOCAB).matches[0].colour_right

    assert colour_right("a red square") is True
    assert colour_right("a red shape") is True  # named, nothing contradicts it
    assert colour_right("a blue square on red paper") is False  # blue is bound to the square
    assert colour_right("a square") is False  # the colour is not named
    assert colour_right("the word 'red' on a square") is False  # quoted text names no colour


def test_nothing_matched_gives_none():
    scores = score_region_captions([_region([0.3, 0.0, 0.45, 0.3], "a red square")], IMAGE, VOCAB)
    assert aggregate_region_captions([scores]) == {"regions": 1, "matched": 0, "category_accuracy": None,
                                                   "colour_accuracy": None}
    assert aggregate_region_captions([]) == {"regions": 0, "matched": 0, "category_accuracy": None,
                                             "colour_accuracy": None}


def test_synthetic_scene_region_captions_are_all_right():
    vocab = Vocabulary.build({shape: [] for shape in SHAPES}, OBJECT_COLOURS)
    scores = []
    for index in range(8):
        record = scene_record(index)[1]
        image = TruthImage(index, record["file_name"], record["width"], record["height"], None, [
            TruthObject(o["shape"], tuple(o["bbox_px"]), {"colour": o["colour"]}) for o in record["objects"]])
        regions = [_region(o["bbox"], o["caption"]) for o in record["objects"]]
        scores.append(score_region_captions(regions, image, vocab))
    result = aggregate_region_captions(scores)
    assert result["matched"] == result["regions"] > 8
    assert result["category_accuracy"] == 1.0 and result["colour_accuracy"] == 1.0
