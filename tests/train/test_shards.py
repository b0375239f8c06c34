import io
import itertools

import fsspec
import pyarrow.parquet as pq

from finecap.train.shards import Position, iter_all_rows, plan_units, stream_rows


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
    for path in sorted((small_synth / "data").glob("*.parquet")):
        fs.pipe(f"/synth/data/{path.name}", path.read_bytes())
    keys = [r["key"] for r in iter_all_rows("memory://synth", ("key",))]
    local = [r["key"] for r in iter_all_rows(str(small_synth), ("key",))]
    assert keys == local and len(keys) == 60


def test_reading_holds_one_row_group_not_the_file(small_synth):
    first = sorted((small_synth / "data").glob("*.parquet"))[0]
    meta = pq.ParquetFile(io.BytesIO(first.read_bytes())).metadata
    assert meta.num_row_groups == 2  # the synthetic writer's row groups are what a reader holds
    units = plan_units(str(small_synth))
    assert max(u.rows for u in units) == 10
