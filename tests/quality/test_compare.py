"""Evaluations side by side: metric names, groups by identity, A - B."""

from __future__ import annotations

from finecap.quality.compare import compare_results, numeric_leaves


def test_numeric_leaves_skip_lists_bools_strings_and_non_finite():
    value = {"n": 3, "x": {"y": 0.5, "ok": True, "name": "s", "hist": [1, 2], "bad": float("nan")}}
    assert numeric_leaves(value) == {"n": 3, "x.y": 0.5}


def test_leaves_name_groups_and_compare_takes_a_minus_b():
    a = {"dataset": "A", "captions": [{"model": "m", "model_revision": "sha256:0123456789ab", "prompt_id": "p@v1",
                                       "captions": 4, "f1": 0.5}],
         "detection": {"model": "d@1", "ap": 0.25, "per_category": {"cat": {"ap": 0.5, "instances": 2}}}}
    b = {"dataset": "B", "captions": [], "detection": {"model": "d@2", "ap": 0.75, "per_category": {}}}
    assert numeric_leaves(a) == {"captions[m@01234567 p@v1].captions": 4, "captions[m@01234567 p@v1].f1": 0.5,
                                 "detection.ap": 0.25, "detection.per_category.cat.ap": 0.5,
                                 "detection.per_category.cat.instances": 2}
    rows = {r["metric"]: r for r in compare_results(a, b)}
    assert rows["detection.ap"]["change"] == -0.5
    assert rows["captions[m@01234567 p@v1].f1"] == {"metric": "captions[m@01234567 p@v1].f1", "a": 0.5,
                                                     "b": None, "change": None}
