"""diff_outputs on two small outputs with known differences: one caption changed, one row
newly rejected, one rejected row kept, one row only in B, a region added, an OCR caption
changed, a captioner added, a stage fingerprint changed."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from finecap.diff import DiffError, diff_outputs
from finecap.diff import compare as compare_module
from finecap.schema import load_schema
from tests.diff.helpers import VLM_B, caption, region, reject, row, write_report, write_shard

DOG = (0.1, 0.1, 0.5, 0.6)
SIGN = (0.6, 0.2, 0.9, 0.3)
CAT = (0.55, 0.5, 0.95, 0.9)
FACTS_A = {"fingerprints": {"prepare": "fp-p", "caption": "fp-c1"}, "version": "v-a",
           "prompts": {"global_detailed/v1": "sha256:p1"}}
FACTS_B = {"fingerprints": {"prepare": "fp-p", "caption": "fp-c2"}, "version": "v-b",
           "prompts": {"global_detailed/v1": "sha256:p1", "global_short/v1": "sha256:p2"}}


def write_a(out):
    write_shard(out, "part-000000", [
        row("k0", [caption("a dog on grass")], [region(DOG, caption_text="a brown dog")]),
        row("k1", [caption("old text")]),
        row("k2", [caption("a red car")]),
        row("k3", [caption("a shop sign")], [region(SIGN, "ocr", "text", "0PEN")]),
    ], [reject("k4", "part-000000", "filter/blurry")], **FACTS_A)
    write_shard(out, "part-000001", [row("k5", [caption("a blue sky")])],
                [reject("k6", "part-000001", "prepare/decode_error")], **FACTS_A)
    write_report(out, "stats.json", {"rows": 5, "quality": {"blur": {"mean": 10.0}}, "output": "A", "hist": [1, 2]})


def write_b(out):
    jittered = tuple(c + 5e-5 for c in DOG)  # the same detection recomputed: within tolerance
    write_shard(out, "part-000000", [
        row("k0", [caption("a dog on grass")],
            [region(jittered, caption_text="a brown dog"), region(CAT, category="cat", caption_text="a cat")]),
        row("k1", [caption("the new text")]),
        row("k3", [caption("a shop sign")], [region(SIGN, "ocr", "text", "OPEN")]),
    ], [reject("k2", "part-000000", "filter/blurry"), reject("k4", "part-000000", "filter/blurry")],
        data_name="part-000000.r1", **FACTS_B)
    write_shard(out, "part-000001", [
        row("k5", [caption("a blue sky"), caption("sky", VLM_B)]),
        row("k6", [caption("a cat")]),
        row("k7", [caption("a tree")]),
    ], [], **FACTS_B)
    write_report(out, "stats.json", {"rows": 6, "quality": {"blur": {"mean": 12.5}}, "output": "B", "only_b": 3})


@pytest.fixture
def outputs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_a(a)
    write_b(b)
    # Files no manifest names: a rebuild's replaced data file and an uncommitted shard. Never read.
    write_shard(tmp_path / "decoy", "part-000000", [row("decoy", [caption("x")])], [])
    (tmp_path / "decoy" / "data" / "part-000000.parquet").rename(b / "data" / "part-000000.parquet")
    write_shard(tmp_path / "orphan", "part-000009", [row("orphan", [caption("x")])], [])
    (tmp_path / "orphan" / "data" / "part-000009.parquet").rename(b / "data" / "part-000009.parquet")
    return str(a), str(b)


def test_rows_and_fates(outputs):
    rows = diff_outputs(*outputs, examples=3)["rows"]
    assert rows["a"] == {"shards": 2, "rows_in": 7, "written": 5, "rejected": 2}
    assert rows["b"] == {"shards": 2, "rows_in": 8, "written": 6, "rejected": 2}
    assert rows["keys"] == {"only_a": {"count": 0, "examples": []}, "only_b": {"count": 1, "examples": ["k7"]},
                            "both": 7}
    assert rows["rejects"] == {"filter/blurry": {"a": 1, "b": 2}, "prepare/decode_error": {"a": 1, "b": 0}}
    assert rows["fate_changed"] == {
        "kept_to_rejected": {"filter/blurry": {"count": 1, "examples": ["k2"]}},
        "rejected_to_kept": {"prepare/decode_error": {"count": 1, "examples": ["k6"]}},
        "reason_changed": {},
    }


def test_captions_per_captioner(outputs):
    first, second = diff_outputs(*outputs)["captions"]
    assert (first["model"], first["prompt_id"]) == ("tiny:vlm-a", "global_detailed/v1")
    assert first["a"] == {"rows": 5, "mean_chars": 10.4, "mean_tokens": 3.0, "revisions": {"sha256:aaaa": 5}}
    assert first["b"] == {"rows": 6, "mean_chars": 9.67, "mean_tokens": 2.83, "revisions": {"sha256:aaaa": 6}}
    none = {"count": 0, "examples": []}
    assert first["in_both"] == {"identical": 3, "changed": {"count": 1, "examples": ["k1"]},
                                "added": none, "removed": none}
    assert (second["model"], second["a"]["rows"], second["b"]["rows"]) == ("tiny:vlm-b", 0, 1)
    assert second["in_both"] == {"identical": 0, "changed": none, "added": {"count": 1, "examples": ["k5"]},
                                 "removed": none}


def test_regions_per_origin_and_category(outputs):
    regions = diff_outputs(*outputs)["regions"]
    assert regions["by_origin"] == {
        "detector": {"regions": {"a": 1, "b": 2}, "captioned": {"a": 1, "b": 2}},
        "ocr": {"regions": {"a": 1, "b": 1}, "captioned": {"a": 1, "b": 1}},
    }
    assert regions["by_category"] == {"detector": {"cat": {"a": 0, "b": 1}, "dog": {"a": 1, "b": 1}},
                                      "ocr": {"text": {"a": 1, "b": 1}}}
    none = {"count": 0, "examples": []}
    detector, ocr = regions["in_both"]["detector"], regions["in_both"]["ocr"]
    assert detector == {"matched": 1, "caption_identical": 1, "only_a": none,
                        "only_b": {"count": 1, "examples": ["k0"]}, "caption_changed": none,
                        "caption_added": none, "caption_removed": none, "category_changed": none}
    assert (ocr["matched"], ocr["caption_identical"], ocr["caption_changed"]) == (1, 0, {"count": 1, "examples": ["k3"]})


def test_provenance_and_metrics(outputs):
    diff = diff_outputs(*outputs)
    provenance = diff["provenance"]
    assert provenance["stages_differ"] == ["caption"]
    assert provenance["fingerprints"]["prepare"] == {"a": {"fp-p": 2}, "b": {"fp-p": 2}, "same": True}
    assert provenance["versions"] == {"a": ["v-a"], "b": ["v-b"]}
    assert provenance["prompts"]["global_short/v1"] == {"a": None, "b": "sha256:p2"}
    assert diff["metrics"] == {"files": {"stats.json": {
        "quality.blur.mean": {"a": 10.0, "b": 12.5, "delta": 2.5},
        "rows": {"a": 5, "b": 6, "delta": 1},
    }}, "unreadable": []}


def test_identical_outputs_have_no_differences(outputs):
    diff = diff_outputs(outputs[0], outputs[0])
    assert diff["rows"]["keys"]["both"] == 7 and not any(diff["rows"]["fate_changed"].values())
    assert [c["in_both"]["identical"] for c in diff["captions"]] == [5]
    assert diff["provenance"]["stages_differ"] == []
    assert {o: e["matched"] for o, e in diff["regions"]["in_both"].items()} == {"detector": 1, "ocr": 1}


def test_resharded_rows_are_still_compared(outputs, tmp_path):
    """B holds A's rows in one shard of another name: rows pair by key, not by shard id."""
    resharded = tmp_path / "resharded"
    write_shard(resharded, "all", [
        row("k0", [caption("a dog on grass")], [region(DOG, caption_text="a brown dog")]),
        row("k1", [caption("old text")]), row("k2", [caption("a red car")]),
        row("k3", [caption("a shop sign")], [region(SIGN, "ocr", "text", "0PEN")]),
        row("k5", [caption("a blue sky")]),
    ], [reject("k4", "all", "filter/blurry"), reject("k6", "all", "prepare/decode_error")])
    diff = diff_outputs(outputs[0], str(resharded))
    assert diff["captions"][0]["in_both"]["identical"] == 5
    assert diff["regions"]["in_both"]["ocr"]["caption_identical"] == 1
    assert not any(diff["rows"]["fate_changed"].values())


def test_reads_no_image_bytes(outputs, monkeypatch):
    asked = []
    real = compare_module.read_data
    monkeypatch.setattr(compare_module, "read_data", lambda shard, columns=None: asked.append(columns) or real(shard, columns))
    diff_outputs(*outputs)
    assert asked and all(columns is not None and "image" not in columns for columns in asked)


def test_an_output_without_shards_is_an_error(outputs, tmp_path):
    with pytest.raises(DiffError, match="no committed shards under"):
        diff_outputs(outputs[0], str(tmp_path / "empty"))


def test_a_shard_with_every_row_rejected(outputs, tmp_path):
    empty = tmp_path / "all-rejected"
    write_shard(empty, "part-000000", [], [reject(k, "part-000000", "fetch/timeout") for k in ("k0", "k1")])
    diff = diff_outputs(outputs[0], str(empty))
    assert diff["rows"]["fate_changed"]["kept_to_rejected"]["fetch/timeout"]["count"] == 2
    assert diff["rows"]["keys"]["only_a"]["count"] == 5
    assert diff["captions"][0]["b"]["rows"] == 0 and diff["regions"]["by_origin"]["detector"]["regions"]["b"] == 0


def test_a_v1_output_against_a_current_one(tmp_path):
    """A version written before the schema changed compares with its rebuild in the new one."""
    old, new = tmp_path / "v1", tmp_path / "current"
    rows = [row("k0", [caption("a dog")], [region(DOG)]), row("k1", [caption("a cat")])]
    write_shard(old, "part-000000", rows, [], schema_version="v1")
    write_shard(new, "part-000000", rows[:1], [reject("k1", "part-000000", "filter/blurry")])
    diff = diff_outputs(str(old), str(new))
    assert diff["provenance"]["schema_versions"] == {"a": ["v1"], "b": [load_schema().version]}
    assert diff["rows"]["fate_changed"]["kept_to_rejected"] == {"filter/blurry": {"count": 1, "examples": ["k1"]}}
    assert diff["captions"][0]["in_both"]["identical"] == 1 and diff["regions"]["in_both"]["detector"]["matched"] == 1


def test_outputs_on_another_filesystem(outputs):
    """Any fsspec URI: the same outputs copied to fsspec's in-memory filesystem diff the same."""
    memory = fsspec.filesystem("memory")
    try:
        for side, local in zip("ab", outputs, strict=True):
            for path in Path(local).rglob("*.*"):
                memory.pipe_file(f"/diff-test/{side}/{path.relative_to(local).as_posix()}", path.read_bytes())
        remote = diff_outputs("memory://diff-test/a", "memory://diff-test/b")
    finally:
        memory.rm("/diff-test", recursive=True)
    local = diff_outputs(*outputs)
    for section in ("rows", "captions", "regions", "provenance", "metrics"):
        assert remote[section] == local[section], section
