import io
import json
import os

import fsspec
import pyarrow as pa
import pytest

from finecap import storage
from finecap.dataset import (
    committed_shards,
    data_file_uris,
    is_output,
    iter_committed,
    orphan_data_files,
    read_columns,
    read_data,
    read_rejects,
)
from tests.dataset.helpers import write_shard


def _keys(output, **kwargs) -> list[str]:
    return [k for _, data in iter_committed(output, ["key"], **kwargs) for k in data.column("key").to_pylist()]


def test_only_committed_shards_are_read(tmp_path):
    out = str(tmp_path / "out")
    write_shard(out, "part-000000", ["a", "b"])
    write_shard(out, "part-000001", ["c"], commit=False)  # data and rejects written, manifest not yet
    write_shard(out, "part-000002", ["d"])
    assert [s.shard_id for s in committed_shards(out)] == ["part-000000", "part-000002"]
    assert _keys(out) == ["a", "b", "d"]
    assert [os.path.basename(u) for u in data_file_uris(out)] == ["part-000000.parquet", "part-000002.parquet"]
    assert [os.path.basename(u) for u in orphan_data_files(out)] == ["part-000001.parquet"]


def test_files_come_from_the_manifest_even_when_named_otherwise(tmp_path):
    out = str(tmp_path / "out")
    write_shard(out, "part-000000", ["old-1", "old-2"])
    # a rebuild writes the new version under a new name, then the manifest that names it
    write_shard(out, "part-000000", ["new-1"], name="part-000000-r2", rejected=("new-2",))
    (shard,) = committed_shards(out)
    assert shard.data_uri == os.path.join(out, "data", "part-000000-r2.parquet")
    assert shard.rejects_uri == os.path.join(out, "rejects", "part-000000-r2.parquet")
    assert read_data(shard, ["key"]).column("key").to_pylist() == ["new-1"]
    assert read_rejects(shard, ["key"]).column("key").to_pylist() == ["new-2"]
    assert [os.path.basename(u) for u in orphan_data_files(out)] == ["part-000000.parquet"]


def test_a_manifest_without_files_means_the_files_named_after_the_shard(tmp_path):
    out = str(tmp_path / "out")
    write_shard(out, "part-000000", ["a"], files=False, rejected=("b",))
    (shard,) = committed_shards(out)
    assert shard.data_uri == os.path.join(out, "data", "part-000000.parquet")
    shard_out, data, rejects = next(iter_committed(out, ["key"], rejects=True))
    assert shard_out == shard and {shard: 1}[shard_out] == 1
    assert (data.column("key").to_pylist(), rejects.column("key").to_pylist()) == (["a"], ["b"])
    assert orphan_data_files(out) == []


def test_a_manifest_cannot_name_a_file_outside_the_output(tmp_path):
    out = str(tmp_path / "out")
    manifest = write_shard(out, "part-000000", ["a"])
    manifest["files"]["data"] = "../elsewhere/part-000000.parquet"
    storage.write_bytes(os.path.join(out, "_manifest", "part-000000.json"), json.dumps(manifest).encode())
    with pytest.raises(ValueError, match=r"files.data '\.\./elsewhere/part-000000.parquet' is not a path inside"):
        committed_shards(out)


class _CountingFile(io.BytesIO):
    """A file object that counts the bytes pyarrow asks it for."""

    read_total = 0

    def read(self, size=-1):
        data = super().read(size)
        _CountingFile.read_total += len(data)
        return data


class _CountingFs:
    def open(self, path, mode="rb"):
        with open(path, "rb") as f:
            return _CountingFile(f.read())


def test_column_projection_reads_the_asked_columns_only(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    image = os.urandom(2 << 20)  # incompressible: 2 MiB on disk
    write_shard(out, "part-000000", ["a"], image=image)
    (shard,) = committed_shards(out)
    monkeypatch.setattr(storage, "filesystem", lambda uri: (_CountingFs(), uri))
    table = read_data(shard, ["width", "key"])
    assert table.column_names == ["width", "key"] and table.column("key").to_pylist() == ["a"]
    # pyarrow reads the footer with one 64 KiB speculative read (65686 bytes in all here), not the image
    assert _CountingFile.read_total < 256 * 1024
    assert b"huggingface" in table.schema.metadata
    _CountingFile.read_total = 0
    assert read_data(shard, ["image"]).column("image")[0]["bytes"].as_py() == image
    assert _CountingFile.read_total > 2 << 20


def test_v1_and_v2_shards_read_side_by_side(tmp_path):
    out = str(tmp_path / "out")
    write_shard(out, "part-000000", ["a"], version="v1")
    write_shard(out, "part-000001", ["b"], version="v2", ocr_document=True, alt_text="alt")
    v1, v2 = committed_shards(out)
    assert (v1.schema_version, v2.schema_version) == ("v1", "v2")
    # a column only v2 has comes back as nulls of its v2 type from a v1 file
    old = read_data(v1, ["key", "ocr_document"])
    assert old.schema.field("ocr_document").type == pa.bool_() and old.column("ocr_document").to_pylist() == [None]
    assert read_data(v2, ["key", "ocr_document"]).column("ocr_document").to_pylist() == [True]
    assert "alt_text" in read_rejects(v1, ["key", "alt_text"]).column_names
    # columns a file has keep the shape they were written with
    assert "fingerprints" not in {f.name for f in read_data(v1, ["provenance"]).schema.field("provenance").type}
    assert "fingerprints" in {f.name for f in read_data(v2, ["provenance"]).schema.field("provenance").type}
    assert "ocr_document" not in read_data(v1).column_names  # the whole file: exactly as written


def test_a_column_no_schema_knows_is_an_error(tmp_path):
    out = str(tmp_path / "out")
    write_shard(out, "part-000000", ["a"])
    (shard,) = committed_shards(out)
    with pytest.raises(ValueError, match="no column 'colour'"):
        read_data(shard, ["key", "colour"])
    with pytest.raises(ValueError, match="no column 'colour'"):
        read_columns(shard.data_uri, ["colour"])


def test_any_fsspec_uri_and_what_counts_as_an_output(tmp_path):
    out = "memory://reader-test/out"
    write_shard(out, "part-000000", ["a"])
    write_shard(out, "part-000001", ["b"], commit=False)
    try:
        assert data_file_uris(out) == ["memory://reader-test/out/data/part-000000.parquet"]
        assert _keys(out) == ["a"]
        assert is_output(out) and not is_output(str(tmp_path))
        (tmp_path / "data").mkdir()  # a build whose first shard is not committed yet
        assert is_output(str(tmp_path))
    finally:
        fsspec.filesystem("memory").rm("/reader-test", recursive=True)
