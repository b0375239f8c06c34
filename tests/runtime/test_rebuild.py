"""The rebuild plan and the rows a rebuilt shard reads back (no Ray, no models)."""

from __future__ import annotations

import pyarrow as pa

from finecap.runtime.commit import ShardProgress, commit_shard
from finecap.runtime.rebuild import plan_shard, read_shard, why
from finecap.runtime.runner import run_facts
from finecap.sources import make_source
from finecap.stages.base import RERUN, Stage
from finecap.stages.detect import DetectStage, region, regions_type
from finecap.stages.fingerprints import pipeline_prints
from finecap.stages.ocr import OcrStage
from finecap.stages.regions import RegionsStage
from tests.runtime.helpers import finished_shard, stage_pieces

ALL = ["prepare", "filter", "caption", "phrases", "detect", "ocr", "regions", "quality"]


def _manifest(prints, **changes) -> dict:
    fingerprints = {name: p.fingerprint for name, p in prints.items()}
    fingerprints.update(changes)
    return {"shard": "part-000000", "rows_in": 4, "fingerprints": fingerprints,
            "rejects_by_reason": {"regions/image_lost": 1, "prepare/decode_error": 2},
            "files": {"data": "data/part-000000.x.parquet", "rejects": "rejects/part-000000.x.parquet"}}


def test_a_changed_region_setting_reruns_the_regions_stage_only(local_config):
    prints = pipeline_prints(local_config())
    shard = plan_shard("part-000000", _manifest(prints, regions="sha256:old"), "/out", prints)
    assert (shard.runs, shard.clears, shard.redecide) == (("regions",), ("regions",), ("regions",))
    assert shard.redecided_rows == 1  # the regions reject; the prepare rejects stay
    assert shard.data_uri.endswith("/out/data/part-000000.x.parquet")


def test_counts_of_a_stage_that_does_not_run_again_are_carried_over(local_config):
    prints = pipeline_prints(local_config())
    failures = {"region_caption_failures": {"empty_after_hygiene": 3}}
    kept = plan_shard("part-000000", {**_manifest(prints, ocr="sha256:old"), **failures}, "/out", prints)
    assert "regions" not in kept.runs and kept.carried == failures
    rerun = plan_shard("part-000000", {**_manifest(prints, regions="sha256:old"), **failures}, "/out", prints)
    assert rerun.carried == {}  # the regions stage counts its rows anew


def test_a_detector_change_also_reruns_the_transient_stages_it_reads(local_config):
    prints = pipeline_prints(local_config())
    shard = plan_shard("part-000000", _manifest(prints, detect="sha256:old", regions="sha256:old"), "/out", prints)
    assert shard.runs == ("prepare", "phrases", "detect", "regions")  # the model copy and phrases were not kept
    assert shard.clears == ("detect", "regions")


def test_a_quality_threshold_reruns_the_quality_stage_and_the_phrases_it_reads(local_config):
    prints = pipeline_prints(local_config())
    shard = plan_shard("part-000000", _manifest(prints, quality="sha256:old"), "/out", prints)
    assert (shard.runs, shard.clears) == (("phrases", "quality"), ("quality",))  # no VLM, detector or OCR


def test_same_fingerprints_are_a_copy_and_another_source_is_new(local_config):
    prints = pipeline_prints(local_config())
    copy = plan_shard("part-000000", _manifest(prints), "/out", prints)
    assert (copy.runs, copy.clears, copy.redecide, copy.redecided_rows) == ((), (), (), 0)
    assert plan_shard("part-000000", _manifest(prints, source="sha256:other"), "/out", prints) is None


def test_a_shard_committed_before_fingerprints_recomputes_every_stage_from_its_bytes(local_config):
    prints = pipeline_prints(local_config())
    manifest = {k: v for k, v in _manifest(prints).items() if k != "fingerprints"}
    shard = plan_shard("part-000000", manifest, "/out", prints)
    assert list(shard.runs) == ALL and shard.redecided_rows == 3


def test_why_names_the_settings_that_changed(local_config):
    old = {n: p.to_json() for n, p in pipeline_prints(local_config()).items()}
    new = pipeline_prints(local_config("regions.captioner.max_tokens=7", "ocr.min_score=0.9"))
    reasons = why(old, new)
    assert reasons == {"ocr": ["ocr.min_score: 0.5 -> 0.9"],
                       "regions": ["regions.captioner.max_tokens: 24 -> 7", "ocr changed"],
                       "quality": ["ocr changed", "regions changed"]}
    assert why({}, new)["regions"] == ["first build"]


def _committed(cfg) -> tuple[object, dict]:
    """One shard committed with this config's fingerprints: kept rows and a decode_error reject."""
    spec, rows = finished_shard(cfg)
    progress = ShardProgress(spec.shard_id, spec.num_rows)
    for piece in stage_pieces(cfg, rows):
        progress.add(piece)
    return spec, commit_shard(cfg.output.uri, progress, run_facts(cfg), None)


def test_a_rebuilt_shard_reads_kept_rows_back_and_redecides_only_the_changed_stages_rejects(local_config):
    cfg = local_config("filter.enabled=false", "caption.enabled=false", "phrases.enabled=false",
                       "detect.enabled=false", "ocr.enabled=false", "regions.enabled=false")
    spec, manifest = _committed(cfg)
    prints = pipeline_prints(cfg)
    source = make_source(cfg)
    assert manifest["rejects_by_reason"] == {"prepare/decode_error": 1}

    shard = plan_shard(spec.shard_id, {**manifest, "fingerprints": {**manifest["fingerprints"], "prepare": "old"}},
                       cfg.output.uri, prints)
    plan = type("Plan", (), {"shards": {spec.shard_id: shard}})()
    table = read_shard(spec, source, plan)
    assert table.num_rows == spec.num_rows
    marks = dict(zip(table.column("key").to_pylist(), table.column(RERUN).to_pylist(), strict=True))
    assert sorted(set(marks.values())) == ["*", ",prepare,"]
    (again,) = [k for k, v in marks.items() if v == "*"]  # the decode_error row, read again from the source
    assert again.endswith("broken.jpg")
    kept = table.filter(pa.compute.equal(table.column(RERUN), ",prepare,"))
    assert kept.column("image_bytes").null_count == 0 and kept.column("captions").to_pylist()[0][0]["text"] == "a square"


class _Counting(Stage):
    name = "regions"

    @classmethod
    def resources(cls, config):
        return config.regions.resources

    def process(self, batch: pa.Table) -> pa.Table:
        return batch.append_column("seen", pa.array([True] * batch.num_rows))


def test_a_stage_works_only_on_new_rows_and_kept_rows_naming_it(local_config):
    batch = pa.table({"key": ["a", "b", "c"], RERUN: ["*", ",regions,", ",caption,"]})
    out = _Counting(local_config())(batch)
    seen = dict(zip(out.column("key").to_pylist(), out.column("seen").to_pylist(), strict=True))
    assert seen == {"a": True, "b": True, "c": None}
    skipped = _Counting(local_config())(batch.filter(pa.compute.equal(batch.column(RERUN), ",caption,")))
    assert "_seconds_regions" not in skipped.column_names  # no busy time for a stage that did nothing


def test_clearing_a_stage_removes_only_what_it_wrote():
    det = {**region([0.1, 0.1, 0.5, 0.5], "detector", 0.9, "a sign", "sign"), "caption": "text", "ocr_text": "STOP",
           "caption_model": "PP-OCRv4@x"}
    ocr = {**region([0.2, 0.2, 0.4, 0.3], "ocr", 0.8, ocr_text="STOP"), "caption": "STOP", "caption_model": "PP-OCRv4@x"}
    batch = pa.table({"regions": pa.array([[det, ocr]], regions_type()), "ocr_document": [True]})
    (without_captions,) = RegionsStage.clear(batch).column("regions").to_pylist()
    assert [(r["origin"], r["caption"], r["ocr_text"]) for r in without_captions] == [("detector", None, None),
                                                                                       ("ocr", None, "STOP")]
    assert [r["origin"] for r in DetectStage.clear(batch).column("regions").to_pylist()[0]] == ["ocr"]
    cleared = OcrStage.clear(batch)
    assert [r["origin"] for r in cleared.column("regions").to_pylist()[0]] == ["detector"]
    assert cleared.column("ocr_document").to_pylist() == [None]
