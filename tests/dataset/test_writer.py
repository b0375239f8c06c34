"""The shard writer's order: new files whole, then the manifest, then the old files out."""

from __future__ import annotations

import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finecap import storage
from finecap.dataset import committed_shards, orphan_data_files, read_columns, writer
from finecap.dataset.writer import ShardWriteError, read_manifest, remove_orphans, write_shard
from tests.test_storage_s3 import prefix, s3_env  # noqa: F401 (fixtures)


def _tables(keys: list[str], rejected: list[str], tag: str = "v1") -> tuple[pa.Table, pa.Table]:
    data = pa.table({"key": keys, "caption": [f"{tag}: {k}" for k in keys]})
    rejects = pa.table({"key": rejected, "stage": ["prepare"] * len(rejected), "reason": ["decode_error"] * len(rejected)})
    return data, rejects


def _commit(out: str, keys: list[str], rejected: list[str], tag: str = "v1", **facts) -> dict:
    data, rejects = _tables(keys, rejected, tag)
    manifest = {"rows_in": len(keys) + len(rejected), "config_hash": "sha256:test", **facts}
    return write_shard(out, "part-000000", data, rejects, manifest, "zstd", read_manifest(out, "part-000000"))


def _visible(out: str) -> dict:
    """What a reader of the committed output sees for the shard: its data and rejects rows."""
    (shard,) = committed_shards(out)
    return {"data": read_columns(shard.data_uri).to_pylist(), "rejects": read_columns(shard.rejects_uri).to_pylist()}


def _files(out: str, kind: str) -> list[str]:
    return [uri.rsplit("/", 1)[-1] for uri in storage.list_files(storage.join(out, kind))]


def test_a_first_commit_uses_the_plain_names_and_sorts_rows_by_key(tmp_path):
    out = str(tmp_path / "out")
    manifest = _commit(out, ["k3", "k1", "k2"], ["k0"])
    assert manifest["files"] == {"data": "data/part-000000.parquet", "rejects": "rejects/part-000000.parquet"}
    assert (manifest["rows_written"], manifest["rows_rejected"]) == (3, 1)
    assert manifest["rejects_by_reason"] == {"prepare/decode_error": 1}
    assert json.loads(storage.read_bytes(f"{out}/_manifest/part-000000.json")) == manifest
    assert [r["key"] for r in _visible(out)["data"]] == ["k1", "k2", "k3"]


def test_a_new_version_gets_fresh_names_and_the_old_files_go_after_its_manifest(tmp_path):
    out = str(tmp_path / "out")
    first = _commit(out, ["k1", "k2"], ["k0"])
    second = _commit(out, ["k1"], ["k0", "k2"], tag="v2")
    third = _commit(out, ["k1", "k2"], ["k0"], tag="v3")
    names = [first["files"], second["files"], third["files"]]
    assert len({f[kind] for f in names for kind in writer.KINDS}) == 6  # every version its own names
    assert all(writer.is_shard_file("part-000000", kind, f[kind]) for f in names for kind in writer.KINDS)
    assert _files(out, "data") == [third["files"]["data"].removeprefix("data/")]
    assert _files(out, "rejects") == [third["files"]["rejects"].removeprefix("rejects/")]
    assert [r["caption"] for r in _visible(out)["data"]] == ["v3: k1", "v3: k2"]


def test_fresh_names_never_collide_with_the_committed_ones(monkeypatch):
    previous = {"shard": "part-000000", "files": {"data": "data/part-000000.aaaaaaaaaaaa.parquet",
                                                   "rejects": "rejects/part-000000.aaaaaaaaaaaa.parquet"}}
    tags = iter([uuid.UUID(int=0xAAAAAAAAAAAA << 80), uuid.UUID(int=0xBBBBBBBBBBBB << 80)])
    monkeypatch.setattr(writer.uuid, "uuid4", lambda: next(tags))
    assert writer.fresh_files("part-000000", previous) == {"data": "data/part-000000.bbbbbbbbbbbb.parquet",
                                                          "rejects": "rejects/part-000000.bbbbbbbbbbbb.parquet"}
    monkeypatch.undo()
    legacy = {"shard": "part-000000"}  # a manifest without `files` names the plain files
    assert writer.fresh_files("part-000000", legacy)["data"] != "data/part-000000.parquet"
    with pytest.raises(ShardWriteError, match="may not reuse"):
        writer.commit_files("unused", {"shard": "part-000000", "rows_in": 0, "rows_written": 0, "rows_rejected": 0,
                                       "files": writer.plain_files("part-000000")}, legacy)


def test_a_crash_after_the_new_data_file_leaves_the_old_version_whole(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    _commit(out, ["k1", "k2"], ["k0"])
    before, old_manifest = _visible(out), read_manifest(out, "part-000000")
    real, written = writer.write_parquet, []

    def killed_after_the_data_file(uri, table, compression):
        if written:
            raise KeyboardInterrupt("killed before the rejects file")
        written.append(uri)
        real(uri, table, compression)

    monkeypatch.setattr(writer, "write_parquet", killed_after_the_data_file)
    with pytest.raises(KeyboardInterrupt):
        _commit(out, ["k1"], ["k0", "k2"], tag="v2")
    assert read_manifest(out, "part-000000") == old_manifest and _visible(out) == before
    orphan = written[0]
    assert orphan_data_files(out) == [orphan] and pq.read_table(orphan).num_rows == 1  # the new file, whole
    monkeypatch.setattr(writer, "write_parquet", real)
    assert remove_orphans(out) == [orphan]
    assert _files(out, "data") == ["part-000000.parquet"] and _visible(out) == before


def test_a_crash_after_the_manifest_leaves_the_new_version_and_orphans_remove_orphans_clears(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    first = _commit(out, ["k1", "k2"], ["k0"])

    def killed(output, relatives):
        raise KeyboardInterrupt("killed before the old files were deleted")

    monkeypatch.setattr(writer, "delete_files", killed)
    with pytest.raises(KeyboardInterrupt):
        _commit(out, ["k1"], ["k0", "k2"], tag="v2")
    second = read_manifest(out, "part-000000")
    assert second["files"] != first["files"] and second["rows_written"] == 1
    assert _visible(out)["data"] == [{"key": "k1", "caption": "v2: k1"}]
    assert len(_files(out, "data")) == len(_files(out, "rejects")) == 2  # both versions still there
    storage.write_bytes(f"{out}/data/notes.txt", b"not a shard file")
    removed = remove_orphans(out)
    assert sorted(uri.rsplit("/", 2)[-2] + "/" + uri.rsplit("/", 1)[-1] for uri in removed) == sorted(
        first["files"].values())
    assert sorted(_files(out, "data")) == sorted([second["files"]["data"].removeprefix("data/"), "notes.txt"])
    assert _visible(out)["data"] == [{"key": "k1", "caption": "v2: k1"}]


def test_a_shard_that_does_not_add_up_writes_nothing(tmp_path):
    out = str(tmp_path / "out")
    data, rejects = _tables(["k1"], [])
    with pytest.raises(ShardWriteError, match="2 rows in but 1 written"):
        write_shard(out, "part-000000", data, rejects, {"rows_in": 2}, None, None)
    assert not storage.exists(out)


def test_remove_orphans_keeps_the_plain_files_of_a_manifest_without_files(tmp_path):
    out = str(tmp_path / "out")
    manifest = _commit(out, ["k1"], [])
    legacy = {k: v for k, v in manifest.items() if k != "files"}  # an output written before `files`
    storage.write_bytes(f"{out}/_manifest/part-000000.json", json.dumps(legacy).encode())
    storage.write_bytes(f"{out}/data/part-000000.0123456789ab.parquet", b"left by a killed commit")
    storage.write_bytes(f"{out}/data/part-000000.parquet.tmp-1f2e", b"a killed local write")
    assert len(remove_orphans(out)) == 2
    assert _files(out, "data") == ["part-000000.parquet"]


def test_versions_and_orphans_on_s3(request, monkeypatch):
    out = request.getfixturevalue("prefix")  # moto on 127.0.0.1 (tests/test_storage_s3.py)
    first = _commit(out, ["k2", "k1"], ["k0"])
    storage.write_bytes(f"{out}/data/part-000000.0123456789ab.parquet", b"left by a killed commit")
    monkeypatch.setattr(writer, "delete_files", lambda output, relatives: None)  # killed before the deletes
    second = _commit(out, ["k1"], ["k0", "k2"], tag="v2")
    monkeypatch.undo()
    assert _visible(out)["data"] == [{"key": "k1", "caption": "v2: k1"}]
    removed = remove_orphans(out)
    assert sorted(removed) == sorted([f"{out}/data/part-000000.0123456789ab.parquet",
                                      *(f"{out}/{name}" for name in first["files"].values())])
    assert storage.list_files(f"{out}/data") == [f"{out}/{second['files']['data']}"]
