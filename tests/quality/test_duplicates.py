"""Duplicate captions over a whole output: known counts across shards, captioners and schema versions."""

from __future__ import annotations

import pytest

from finecap.quality.duplicates import duplicate_captions, normalise_caption
from tests.quality.outputs import caption, write_rows


def _a(text: str) -> dict:
    return caption(text, model="cap-a")


def _b(text: str) -> dict:
    return caption(text, model="cap-b")


@pytest.fixture
def output(tmp_path) -> str:
    """Three shards (v3, v2, v3). Normalised texts and where they occur:
        "a red circle"      S0R0 a, S0R0 b, S0R1 a, S1R0 a      4 (a 3, b 1)
        "two squares"       S0R1 b, S0R2 a, S1R1 b              3 (a 1, b 2)
        "unique text here"  S1R0 a                              1
        "blue sky"          S2R0 b, S2R0 a (first seen in S2)   2 (a 1, b 1)
    10 captions, 9 duplicated; cap-a 6 captions, 3 its own repeats; cap-b 4, 2 its own."""
    out = str(tmp_path / "out")
    write_rows(out, "part-000000", [
        {"captions": [_a("A red circle."), _b("a red circle")]},
        {"captions": [_a("A  RED circle!"), _b("Two squares.")]},
        {"captions": [_a("two squares")]},
    ])
    write_rows(out, "part-000001", [
        {"captions": [_a("Unique text here."), _a("“A red circle”")]},
        {"captions": [_b("two squares.")]},
    ], version="v2")
    write_rows(out, "part-000002", [{"captions": [_b("Blue sky"), _a("\tblue   sky ...")]}])
    return out


def test_normalising_ignores_case_whitespace_runs_and_edge_punctuation_only():
    assert normalise_caption("  A  Red,\tCircle... ") == "a red, circle"
    assert normalise_caption("¿Qué es?") == "qué es"
    assert normalise_caption("“Quoted”") == "quoted"
    assert normalise_caption("!!!") == normalise_caption("") == normalise_caption(None) == ""
    assert normalise_caption("a red circle") != normalise_caption("a red-circle")


def test_known_duplicates_across_shards_captioners_and_versions(output):
    result = duplicate_captions(output)
    assert (result["captions"], result["duplicated"], result["distinct"]) == (10, 9, 4)
    assert result["rate"] == pytest.approx(0.9)
    by = {c["model"]: c for c in result["by_captioner"]}
    assert [c["model"] for c in result["by_captioner"]] == ["cap-a", "cap-b"]
    assert (by["cap-a"]["captions"], by["cap-a"]["duplicated"], by["cap-a"]["rate"]) == (6, 3, 0.5)
    assert (by["cap-b"]["captions"], by["cap-b"]["duplicated"], by["cap-b"]["rate"]) == (4, 2, 0.5)
    assert (by["cap-a"]["model_revision"], by["cap-a"]["prompt_id"]) == ("sha256:1", "global_detailed/v1")
    # "blue sky" first occurs in the last shard: read back from there
    assert result["top"] == [{"text": "a red circle", "count": 4}, {"text": "two squares", "count": 3},
                             {"text": "blue sky", "count": 2}]


def test_top_list_is_cut_to_the_most_repeated_and_ties_list_by_text(tmp_path):
    out = str(tmp_path / "out")
    write_rows(out, "part-000000", [{"captions": [_a(t), _a(t)]} for t in ("zebra", "apple")]
               + [{"captions": [_a("kiwi")] * 3}, {"captions": [_a("mango")]}])
    assert duplicate_captions(out)["top"] == [{"text": "kiwi", "count": 3}, {"text": "apple", "count": 2},
                                              {"text": "zebra", "count": 2}]
    assert duplicate_captions(out, top=1)["top"] == [{"text": "kiwi", "count": 3}]


def test_the_same_caption_from_two_captioners_is_no_repeat_of_either(tmp_path):
    out = str(tmp_path / "out")
    write_rows(out, "part-000000", [{"captions": [_a("a cat"), _b("a cat")]}])
    result = duplicate_captions(out)
    assert (result["duplicated"], [c["duplicated"] for c in result["by_captioner"]]) == (2, [0, 0])


def test_an_output_without_captions_has_no_rate(tmp_path):
    out = str(tmp_path / "out")
    write_rows(out, "part-000000", [{"captions": []}])
    assert duplicate_captions(out) == {"captions": 0, "duplicated": 0, "rate": None, "distinct": 0,
                                       "by_captioner": [], "top": []}
