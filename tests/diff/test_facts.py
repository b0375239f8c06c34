"""Manifest provenance and report metrics side by side."""

from __future__ import annotations

from finecap.diff.facts import compare_metrics, compare_provenance, read_reports
from tests.diff.helpers import write_report


def test_metrics_compare_only_leaves_both_carry():
    a = {"quality.json": {"ap": 0.25, "only_a": 1}, "stats.json": {"rows": 4}}
    b = {"quality.json": {"ap": 0.5, "only_b": 2}, "eval.json": {"rows": 4}}
    assert compare_metrics(a, b) == {"quality.json": {"ap": {"a": 0.25, "b": 0.5, "delta": 0.25}}}


def test_unreadable_report_files_are_listed_not_fatal(tmp_path):
    write_report(tmp_path, "stats.json", {"rows": 1})
    (tmp_path / "report" / "broken.json").write_text("{not json")
    reports, unreadable = read_reports(str(tmp_path))
    assert reports == {"stats.json": {"rows": 1}}
    assert [u.rsplit("/", 1)[-1] for u in unreadable] == ["broken.json"]
    assert read_reports(str(tmp_path / "absent")) == ({}, [])


def test_fingerprints_of_partly_rebuilt_outputs():
    """A rebuild that replaced one shard of two shows both fingerprints for the stage."""
    a = [{"fingerprints": {"caption": "c1", "detect": "d1"}}] * 2
    b = [{"fingerprints": {"caption": "c1", "detect": "d1"}}, {"fingerprints": {"caption": "c2", "detect": "d1"}}]
    result = compare_provenance(a, b)
    assert result["fingerprints"]["caption"] == {"a": {"c1": 2}, "b": {"c1": 1, "c2": 1}, "same": False}
    assert result["stages_differ"] == ["caption"]


def test_outputs_without_fingerprints_are_not_called_different():
    result = compare_provenance([{"fingerprints": {"caption": "c1"}}], [{"schema_version": "v1"}])
    assert result["fingerprints"]["caption"]["same"] is None
    assert result["stages_differ"] == []
    assert result["schema_versions"] == {"a": [], "b": ["v1"]}
