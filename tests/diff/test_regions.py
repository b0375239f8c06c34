"""Region matching by origin and box within BBOX_TOLERANCE, one to one."""

from __future__ import annotations

import pyarrow as pa

from finecap.diff.regions import BBOX_TOLERANCE, RegionTotals, match_regions, region_rows
from finecap.schema import load_schema
from tests.diff.helpers import region, row


def frame(regions_by_key: dict[str, list[dict]]):
    rows = [row(key, [], regions) for key, regions in regions_by_key.items()]
    return region_rows(pa.Table.from_pylist(rows, schema=load_schema().arrow))


def pairs(a, b) -> list[tuple]:
    return sorted(match_regions(frame(a), frame(b)).iter_rows())


BOX = (0.2, 0.3, 0.4, 0.5)


def shifted(box, by: float) -> tuple:
    return tuple(c + by for c in box)


def test_boxes_within_tolerance_match_and_beyond_do_not():
    assert pairs({"k": [region(BOX)]}, {"k": [region(shifted(BOX, 0.9 * BBOX_TOLERANCE))]}) == [("k", 0, 0)]
    assert pairs({"k": [region(BOX)]}, {"k": [region(shifted(BOX, 2 * BBOX_TOLERANCE))]}) == []


def test_match_across_a_grid_cell_boundary():
    """x1 values on either side of a multiple of the tolerance (the join's grid) still match."""
    left = (0.29999, 0.1, 0.5, 0.5)
    right = (0.30004, 0.1, 0.5, 0.5)
    assert pairs({"k": [region(left)]}, {"k": [region(right)]}) == [("k", 0, 0)]
    assert pairs({"k": [region(right)]}, {"k": [region(left)]}) == [("k", 0, 0)]


def test_origin_and_key_must_agree():
    assert pairs({"k": [region(BOX, "detector")]}, {"k": [region(BOX, "ocr", "text")]}) == []
    assert pairs({"k": [region(BOX)]}, {"j": [region(BOX)]}) == []


def test_repeated_boxes_match_one_to_one():
    """Two phrases grounded to one box: each region of A pairs with one of B, in list order."""
    other = (0.6, 0.6, 0.7, 0.7)
    a = {"k": [region(BOX), region(BOX), region(other)]}
    b = {"k": [region(other), region(BOX), region(BOX)]}
    assert pairs(a, b) == [("k", 0, 1), ("k", 1, 2), ("k", 2, 0)]
    assert pairs({"k": [region(BOX)] * 3}, {"k": [region(BOX)]}) == [("k", 0, 0)]


def test_totals_count_unmatched_and_changed_captions():
    a = frame({"k": [region(BOX, caption_text="a dog"), region((0.0, 0.0, 0.1, 0.1), category="cup")]})
    b = frame({"k": [region(BOX, category="puppy", caption_text="a puppy")]})
    totals = RegionTotals(examples=2)
    totals.add_side("a", a)
    totals.add_side("b", b)
    totals.add_pair(a, b, a.select("key").unique())
    result = totals.to_dict()
    detector = result["in_both"]["detector"]
    assert (detector["matched"], detector["caption_identical"]) == (1, 0)
    assert detector["only_a"] == {"count": 1, "examples": ["k"]}
    assert detector["caption_changed"]["count"] == 1 and detector["category_changed"]["count"] == 1
    assert result["by_origin"]["detector"] == {"regions": {"a": 2, "b": 1}, "captioned": {"a": 1, "b": 1}}
    assert list(result["by_category"]["detector"]) == ["cup", "dog", "puppy"]  # largest change first, then name
    assert result["in_both"]["ocr"]["matched"] == 0


def test_rows_without_regions_give_an_empty_frame():
    assert frame({"k": [], "j": []}).height == 0
    assert region_rows(load_schema().arrow.empty_table()).height == 0


def test_malformed_regions_are_counted_but_never_matched():
    """Rows validate would flag (a 3-number box, no origin) still diff instead of crashing."""
    bad = {"k": [{**region(BOX), "bbox": [0.2, 0.3, 0.4]}, {**region(BOX), "origin": None}]}
    totals = RegionTotals(examples=1)
    a = frame(bad)
    totals.add_side("a", a)
    totals.add_pair(a, a, a.select("key").unique())
    result = totals.to_dict()
    assert result["by_origin"]["(none)"]["regions"] == {"a": 1, "b": 0}
    assert result["in_both"]["detector"]["matched"] == 0 and result["in_both"]["(none)"]["matched"] == 1
