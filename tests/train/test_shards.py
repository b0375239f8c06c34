import io
import itertools
import json
import shutil

import fsspec
import pyarrow.parquet as pq
import pytest

from finecap.train.shards import Position, data_files, iter_all_rows, plan_units, stream_rows


def _epoch_keys(units, slot, n_slots, epoch=0):
    rows = stream_rows(units, slot, n_slots, seed=1, start=Position(epoch, 0, 0), epochs=epoch + 1)
    return [row["key"] for row, _ in rows]


def test_units_are_row_groups_and_split_when_readers_outnumber_them(small_synth):
    units = plan_units(str(small_synth))
    assert len(units) == 6 and sum(u.rows for u in units) == 60  # 3 shards x 2 row groups
    many = plan_units(str(small_synth), min_units=16)
    assert len(many) >= 16 and sum(u.rows for u in many) == 60


def test_readers_see_disjoint_rows_that_cover_the_epoch(small_synth):
    units = plan_units(str(small_synth), min_units=4)
    per_slot = [_epoch_keys(units, s, 4) for s in range(4)]
    flat = [k for keys in per_slot for k in keys]
    assert len(flat) == len(set(flat)) == 60
    assert all(per_slot)
    # the next epoch deals the units differently but still covers everything once
    assert sorted(k for s in range(4) for k in _epoch_keys(units, s, 4, epoch=1)) == sorted(flat)


def test_a_position_resumes_exactly_where_reading_stopped(small_synth):
    units = plan_units(str(small_synth))
    full = [(row["key"], pos) for row, pos in itertools.islice(stream_rows(units, 0, 1, seed=5), 90)]
    cut = 37
    resumed = stream_rows(units, 0, 1, seed=5, start=full[cut - 1][1])
    assert [row["key"] for row, _ in itertools.islice(resumed, 90 - cut)] == [k for k, _ in full[cut:]]


def test_streams_from_any_fsspec_uri(small_synth):
    fs = fsspec.filesystem("memory")
    for path in sorted(small_synth.glob("*/*")):
        fs.pipe(f"/synth/{path.parent.name}/{path.name}", path.read_bytes())
    try:
        keys = [r["key"] for r in iter_all_rows("memory://synth", ("key",))]
    finally:
        fs.rm("/synth", recursive=True)
    local = [r["key"] for r in iter_all_rows(str(small_synth), ("key",))]
    assert keys == local and len(keys) == 60


def test_trains_on_the_files_the_manifests_name_only(small_synth, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(small_synth, out)
    committed = sorted(str(p) for p in (out / "data").glob("*.parquet"))
    # a shard still being written, and a rebuilt shard's new version under a new name
    shutil.copy(out / "data" / "part-000001.parquet", out / "data" / "part-000009.parquet")
    (out / "data" / "part-000002.parquet").rename(out / "data" / "part-000002-r2.parquet")
    shutil.copy(out / "data" / "part-000001.parquet", out / "data" / "part-000002.parquet")  # the replaced version
    manifest = json.loads((out / "_manifest" / "part-000002.json").read_text())
    manifest["files"]["data"] = "data/part-000002-r2.parquet"
    (out / "_manifest" / "part-000002.json").write_text(json.dumps(manifest))
    assert data_files(str(out)) == committed[:2] + [str(out / "data" / "part-000002-r2.parquet")]
    keys = [r["key"] for r in iter_all_rows(str(out), ("key",))]
    assert keys == [r["key"] for r in iter_all_rows(str(small_synth), ("key",))]


def test_an_output_without_committed_shards_is_refused_a_plain_folder_is_read(small_synth, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(small_synth, out)
    shutil.rmtree(out / "_manifest")
    with pytest.raises(FileNotFoundError, match="is a FineCap output with no committed shards"):
        plan_units(str(out))
    plain = tmp_path / "plain"
    shutil.copytree(small_synth / "data", plain)
    assert sum(u.rows for u in plan_units(str(plain))) == 60
    with pytest.raises(FileNotFoundError, match="no parquet files under"):
        data_files(str(tmp_path / "empty"))


def test_reading_holds_one_row_group_not_the_file(small_synth):
    first = sorted((small_synth / "data").glob("*.parquet"))[0]
    meta = pq.ParquetFile(io.BytesIO(first.read_bytes())).metadata
    assert meta.num_row_groups == 2  # the synthetic writer's row groups are what a reader holds
    units = plan_units(str(small_synth))
    assert max(u.rows for u in units) == 10
