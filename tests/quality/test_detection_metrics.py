"""Detector AP through pycocotools on hand-built boxes whose AP is worked out below.

How COCO AP comes out (pycocotools 2.0.x, checked in its cocoeval.py): detections of a category
are pooled over images, sorted by score; precision is made monotone (each point takes the best
precision at any higher recall) and read at 101 recall points 0, 0.01, ..., 1.00, each point
taking the precision at the first detection whose recall reaches it (points beyond the final
recall read 0). AP is the mean of those 101 values, averaged over IoU 0.50:0.05:0.95 and the
categories that have instances.
"""

from __future__ import annotations

import pytest

from finecap.quality.detection_metrics import detection_scores
from finecap.quality.truth import TruthImage, TruthObject

CATEGORIES = ["circle", "square", "star"]
FORMS = {"circle": "circle", "circles": "circle", "red circle": "circle", "square": "square", "star": "star"}

# Recall reaches 0.5 and stops: points 0.00..0.50 (51 of 101) read the precision there, 0.51..1 read 0.
HALF = 51 / 101


def canonical(text: str) -> str | None:
    return FORMS.get(text.lower())


def obj(category: str, box, iscrowd: bool = False) -> TruthObject:
    return TruthObject(category, tuple(float(v) for v in box), iscrowd=iscrowd)


def image(*objects: TruthObject, image_id: int = 1, width: int = 100, height: int = 100) -> TruthImage:
    return TruthImage(image_id, f"{image_id}.png", width, height, objects=list(objects))


def det(box_px, score: float, category: str | None = "circle", phrase: str | None = None,
        width: int = 100, height: int = 100, origin: str = "detector") -> dict:
    """A row's region: the pixel box given here normalised by the image size, as rows store it."""
    x1, y1, x2, y2 = box_px
    return {"bbox": [x1 / width, y1 / height, x2 / width, y2 / height], "score": score,
            "category": category, "phrase": phrase, "origin": origin}


def scores(pairs, categories=CATEGORIES):
    return detection_scores(pairs, categories, canonical)


def test_one_perfect_box_scores_one_everywhere():
    # One object, one detection on it: precision 1 at recall 1 at every IoU threshold -> AP 1.
    result = scores([(image(obj("circle", (10, 10, 50, 50))), [det((10, 10, 50, 50), 0.9)])])
    assert result["ap"] == pytest.approx(1.0)
    assert result["ap50"] == pytest.approx(1.0)
    assert result["ap75"] == pytest.approx(1.0)
    assert result["ar100"] == pytest.approx(1.0)
    assert (result["images"], result["instances"], result["detections"], result["unmatched_detections"]) == (1, 1, 1, 0)
    assert result["per_category"]["circle"] == {"instances": 1, "ap": pytest.approx(1.0), "ap50": pytest.approx(1.0)}


def test_one_of_two_objects_found_is_51_of_101():
    # Two circles, one detection (perfect) on the first: after it precision 1, recall 0.5.
    # Points 0..0.50 read 1, the other 50 read 0 -> AP = 51/101 = 0.50495; AR = 0.5.
    truth = image(obj("circle", (0, 0, 20, 20)), obj("circle", (60, 60, 90, 90)))
    result = scores([(truth, [det((0, 0, 20, 20), 0.8)])])
    assert result["ap"] == pytest.approx(HALF)
    assert result["ap50"] == pytest.approx(HALF)
    assert result["ar100"] == pytest.approx(0.5)


def test_false_positive_below_the_hit_costs_nothing_above_it_halves_precision():
    truth = image(obj("circle", (0, 0, 20, 20)), obj("circle", (60, 60, 90, 90)))
    hit, miss = (0, 0, 20, 20), (30, 0, 50, 20)  # miss overlaps no object
    # Hit (0.9) before miss (0.5): precision [1, 0.5], recall [0.5, 0.5]; monotone -> [1, 0.5];
    # points 0..0.50 find the hit (precision 1) -> AP = 51/101 as with no miss at all.
    low = scores([(truth, [det(hit, 0.9), det(miss, 0.5)])])
    assert low["ap"] == pytest.approx(HALF)
    # Miss (0.9) before hit (0.5): precision [0, 0.5], recall [0, 0.5]; monotone -> [0.5, 0.5];
    # points 0..0.50 read 0.5 -> AP = 0.5 * 51/101 = 0.2525.
    high = scores([(truth, [det(hit, 0.5), det(miss, 0.9)])])
    assert high["ap"] == pytest.approx(0.5 * HALF)
    assert high["ar100"] == pytest.approx(0.5)


def test_detections_are_ranked_across_images():
    # Image 1: a circle found at 0.5. Image 2: a circle missed, with a wrong box at 0.9. Pooled,
    # the wrong box ranks first, so this is the 0.2525 case above spread over two images.
    first = image(obj("circle", (0, 0, 20, 20)), image_id=1)
    second = image(obj("circle", (60, 60, 90, 90)), image_id=2)
    result = scores([(first, [det((0, 0, 20, 20), 0.5)]), (second, [det((0, 0, 20, 20), 0.9)])])
    assert result["ap"] == pytest.approx(0.5 * HALF)
    assert (result["images"], result["instances"], result["detections"]) == (2, 2, 2)


def test_loose_box_counts_at_low_iou_thresholds_only():
    # Truth 100 x 100, detection 100 x 72 inside it: IoU 0.72. It is a hit at thresholds
    # 0.50, 0.55, 0.60, 0.65, 0.70 (AP 1 each) and a miss at 0.75 .. 0.95 (AP 0 each) -> AP 0.5.
    result = scores([(image(obj("square", (0, 0, 100, 100))), [det((0, 0, 100, 72), 0.7, "square")])])
    assert result["ap50"] == pytest.approx(1.0)
    assert result["ap75"] == pytest.approx(0.0)
    assert result["ap"] == pytest.approx(0.5)
    assert result["ar100"] == pytest.approx(0.5)


def test_per_category_and_overall_mean():
    # Circle found (AP 1), square missed (AP 0), star has no instance (None, left out of the
    # mean): overall AP = (1 + 0) / 2.
    truth = image(obj("circle", (0, 0, 20, 20)), obj("square", (50, 50, 80, 80)))
    result = scores([(truth, [det((0, 0, 20, 20), 0.9, "circle")])])
    per = result["per_category"]
    assert per["circle"] == {"instances": 1, "ap": pytest.approx(1.0), "ap50": pytest.approx(1.0)}
    assert per["square"] == {"instances": 1, "ap": pytest.approx(0.0), "ap50": pytest.approx(0.0)}
    assert per["star"] == {"instances": 0, "ap": None, "ap50": None}
    assert result["ap"] == pytest.approx(0.5)


def test_right_box_wrong_category_is_a_miss_and_a_false_positive():
    # The detection says square on the circle: circle AP 0 (missed); square has no instance.
    result = scores([(image(obj("circle", (0, 0, 20, 20))), [det((0, 0, 20, 20), 0.9, "square")])])
    assert result["per_category"]["circle"]["ap"] == pytest.approx(0.0)
    assert result["per_category"]["square"]["ap"] is None
    assert result["ap"] == pytest.approx(0.0)


def test_unknown_categories_are_counted_and_left_out():
    # "blob" maps to no truth category: counted as unmatched, not a false positive, so the
    # circle's AP stays 1 even though the blob scores higher and sits elsewhere.
    truth = image(obj("circle", (0, 0, 20, 20)))
    result = scores([(truth, [det((0, 0, 20, 20), 0.5), det((50, 50, 70, 70), 0.9, "blob")])])
    assert result["ap"] == pytest.approx(1.0)
    assert (result["detections"], result["unmatched_detections"]) == (2, 1)


def test_phrase_names_the_category_when_the_category_does_not():
    truth = image(obj("circle", (0, 0, 20, 20)))
    for region in (det((0, 0, 20, 20), 0.9, None, "red circle"), det((0, 0, 20, 20), 0.9, "thing", "circles")):
        result = scores([(truth, [region])])
        assert (result["ap"], result["unmatched_detections"]) == (pytest.approx(1.0), 0)


def test_only_detector_regions_are_scored():
    # An OCR region exactly on the object is not a detection: the circle stays missed.
    truth = image(obj("circle", (0, 0, 20, 20)))
    result = scores([(truth, [det((0, 0, 20, 20), 0.9, origin="ocr")])])
    assert (result["detections"], result["ap"]) == (0, pytest.approx(0.0))


def test_boxes_scale_by_the_truth_image_size():
    # A 200 x 50 image: the normalised box [0.1, 0.2, 0.5, 0.8] is pixels (20, 10, 100, 40).
    truth = image(obj("star", (20, 10, 100, 40)), width=200, height=50)
    region = {"bbox": [0.1, 0.2, 0.5, 0.8], "score": 0.6, "category": "star", "origin": "detector"}
    assert scores([(truth, [region])])["ap"] == pytest.approx(1.0)


def test_crowd_objects_are_not_instances_and_absorb_detections():
    # A detection on a crowd region is ignored (neither hit nor false positive), so the circle
    # found at a lower score still gives AP 1, and only one instance is counted.
    truth = image(obj("circle", (0, 0, 20, 20)), obj("circle", (40, 40, 90, 90), iscrowd=True))
    result = scores([(truth, [det((0, 0, 20, 20), 0.5), det((45, 45, 85, 85), 0.9)])])
    assert result["ap"] == pytest.approx(1.0)
    assert result["instances"] == 1


def test_only_the_top_100_detections_of_an_image_count():
    # 99 false positives (tiny boxes away from the object) outscore the hit: the hit is the
    # 100th detection, precision 1/100 at recall 1, monotone back to recall 0 -> AP 0.01.
    # One more false positive pushes the hit to 101st, past maxDets 100 -> AP 0, AR 0.
    truth = image(obj("circle", (0, 0, 10, 10)), width=1000, height=1000)
    hit = det((0, 0, 10, 10), 0.1, width=1000, height=1000)

    def misses(n):
        return [det((20 + 5 * i, 500, 22 + 5 * i, 502), 0.9, width=1000, height=1000) for i in range(n)]

    kept = scores([(truth, [*misses(99), hit])])
    assert kept["ap"] == pytest.approx(0.01)
    assert kept["ar100"] == pytest.approx(1.0)
    dropped = scores([(truth, [*misses(100), hit])])
    assert dropped["ap"] == pytest.approx(0.0)
    assert dropped["ar100"] == pytest.approx(0.0)


def test_no_detections_scores_zero_and_no_instances_scores_none():
    truth = image(obj("circle", (0, 0, 20, 20)))
    none_found = scores([(truth, []), (image(image_id=2), None)])
    assert (none_found["ap"], none_found["ap50"], none_found["ap75"], none_found["ar100"]) == (0.0, 0.0, 0.0, 0.0)
    assert none_found["per_category"]["circle"]["ap"] == 0.0
    nothing_to_find = scores([(image(), [det((0, 0, 20, 20), 0.9)])])
    assert (nothing_to_find["instances"], nothing_to_find["ap"], nothing_to_find["ar100"]) == (0, None, None)
    empty = scores([])
    assert (empty["images"], empty["ap"], empty["per_category"]["circle"]["instances"]) == (0, None, 0)


def test_truth_categories_missing_from_the_list_are_still_scored():
    result = scores([(image(obj("star", (0, 0, 20, 20))), [det((0, 0, 20, 20), 0.9, "star")])], ["circle"])
    assert result["per_category"]["star"]["ap"] == pytest.approx(1.0)
    assert result["per_category"]["circle"]["ap"] is None


def test_malformed_regions_are_skipped():
    truth = image(obj("circle", (0, 0, 20, 20)))
    regions = [{"bbox": None, "score": 0.9, "category": "circle", "origin": "detector"},
               {"bbox": [0.0, 0.0, 0.2, 0.2], "score": None, "category": "circle", "origin": "detector"}]
    result = scores([(truth, regions)])
    # The boxless region is not a detection; the scoreless one ranks at 0 and still hits.
    assert (result["detections"], result["ap"]) == (1, pytest.approx(1.0))


def test_pycocotools_prints_nothing(capsys):
    scores([(image(obj("circle", (0, 0, 20, 20))), [det((0, 0, 20, 20), 0.9)])])
    scores([(image(obj("circle", (0, 0, 20, 20))), [])])
    captured = capsys.readouterr()
    assert captured.out == ""
