import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finecap import storage
from finecap.runtime.commit import ShardProgress, commit_shard
from finecap.schema import SCHEMA_VERSION
from finecap.validate import format_report, report_json, validate_output
from tests.dataset.helpers import write_shard
from tests.runtime.helpers import finished_shard, stage_pieces

FACTS = {"config_hash": "sha256:test", "schema_version": SCHEMA_VERSION, "models": [{"stage": "caption", "model": "m"}]}


@pytest.fixture
def output(local_config):
    cfg = local_config("source.shard_size=4")
    for index in range(3):
        spec, rows = finished_shard(cfg, index)
        progress = ShardProgress(spec.shard_id, spec.num_rows)
        for piece in stage_pieces(cfg, rows):
            progress.add(piece)
        commit_shard(cfg.output.uri, progress, FACTS, None)
    return cfg.output.uri


def _rewrite(path, fn):
    table = pq.read_table(path)
    pq.write_table(fn(table), path)


def test_a_clean_output_validates(output):
    report = validate_output(output)
    assert report.ok, report.problems
    assert (report.shards, report.rows + report.rejects) == (3, 11)


def test_empty_output_is_invalid(tmp_path):
    assert "no committed shards" in validate_output(str(tmp_path)).problems[0]


def test_broken_accounting_is_named(output):
    _rewrite(f"{output}/data/part-000001.parquet", lambda t: t.slice(1))
    problems = " ".join(validate_output(output).problems)
    assert "shard part-000001: accounting broken: 4 rows in, 3 written + 0 rejected" in problems


def test_duplicate_keys_across_shards_are_named(output):
    first = pq.read_table(f"{output}/data/part-000001.parquet").column("key")[0].as_py()

    def rename(t):
        keys = t.column("key").to_pylist()
        keys[0] = first
        return t.set_column(0, t.schema.field("key"), pa.array(keys))

    _rewrite(f"{output}/data/part-000002.parquet", rename)
    assert any(f"duplicate key {first!r}" in p for p in validate_output(output).problems)


def test_caption_without_provenance_is_named(output):
    def strip(t):
        rows = t.to_pylist()
        rows[0]["captions"][0]["model_revision"] = ""
        return pa.Table.from_pylist(rows, schema=t.schema)

    _rewrite(f"{output}/data/part-000002.parquet", strip)
    assert any("caption lacks model_revision" in p for p in validate_output(output).problems)


def test_missing_schema_metadata_is_named(output):
    _rewrite(f"{output}/data/part-000000.parquet", lambda t: t.replace_schema_metadata(None))
    assert "no 'huggingface' features metadata" in " ".join(validate_output(output).problems)


def test_a_data_file_no_manifest_names_is_a_warning_and_never_read(output):
    storage.write_bytes(f"{output}/data/part-000009.parquet", b"not parquet: reading it would fail")
    report = validate_output(output)
    assert report.ok, report.problems
    assert [p.rsplit("/", 1)[-1] for p in report.orphans] == ["part-000009.parquet"]
    assert json.loads(report_json(report))["orphans"] == 1
    assert "warning: 1 data files no manifest names" in format_report(report, output)


def test_each_shard_validates_against_the_schema_version_its_manifest_names(tmp_path):
    out = str(tmp_path / "out")
    write_shard(out, "part-000000", ["a", "b"], version="v1", rejected=("c",))
    write_shard(out, "part-000001", ["d"], version="v2", ocr_document=False)
    # a rebuilt shard: the manifest names the new file, the old version stays until cleaned up
    write_shard(out, "part-000002", ["e-old"], version="v1")
    write_shard(out, "part-000002", ["e"], version="v2", name="part-000002-r2")
    report = validate_output(out)
    assert report.ok, report.problems
    assert (report.shards, report.rows, report.rejects, len(report.orphans)) == (3, 4, 1, 1)
    # a v2 file under a manifest that says v1 is named
    manifest = json.loads(storage.read_bytes(f"{out}/_manifest/part-000001.json"))
    storage.write_bytes(f"{out}/_manifest/part-000001.json", json.dumps({**manifest, "schema_version": "v1"}).encode())
    problems = " ".join(validate_output(out).problems)
    assert "shard part-000001 data: unexpected columns ['ocr_document']" in problems


def test_an_unknown_schema_version_or_an_unreadable_file_is_named(tmp_path):
    out = str(tmp_path / "out")
    manifest = write_shard(out, "part-000000", ["a"])
    storage.write_bytes(f"{out}/_manifest/part-000000.json", json.dumps({**manifest, "schema_version": "v9"}).encode())
    write_shard(out, "part-000001", ["b"])
    storage.remove(f"{out}/rejects/part-000001.parquet")
    write_shard(out, "part-000002", ["c"])
    storage.write_bytes(f"{out}/data/part-000002.parquet", b"not parquet")
    problems = " ".join(validate_output(out).problems)
    assert "shard part-000000: unknown schema version 'v9'" in problems
    assert "shard part-000001: cannot read its files" in problems
    assert "shard part-000002: cannot read its files" in problems


def test_manifest_counts_must_match_files(output):
    path = f"{output}/_manifest/part-000000.json"
    manifest = json.loads(storage.read_bytes(path))
    manifest["rows_written"] += 1
    storage.write_bytes(path, json.dumps(manifest).encode())
    assert any("manifest says" in p for p in validate_output(output).problems)


def test_bad_boxes_are_named(output):
    def box(t):
        rows = t.to_pylist()
        rows[0]["regions"] = [{"bbox": [0.5, 0.2, 0.1, 1.2], "origin": "detector"}]
        return pa.Table.from_pylist(rows, schema=t.schema)

    _rewrite(f"{output}/data/part-000001.parquet", box)
    assert any("bad box" in p for p in validate_output(output).problems)
