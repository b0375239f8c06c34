"""The write stage: a shard that arrives whole is written as final files, any other is staged."""

from __future__ import annotations

import pyarrow as pa

from finecap import storage
from finecap.stages.write import SHARD_ROWS, PieceWriter, whole_shard
from tests.runtime.helpers import finished_shard


def _sized(rows: pa.Table, size: int) -> pa.Table:
    return rows.append_column(SHARD_ROWS, pa.array([size] * rows.num_rows, pa.int64()))


def test_a_batch_with_one_whole_shard_and_part_of_another_writes_one_final_and_one_staged_piece(local_config):
    cfg = local_config("source.shard_size=4")
    (spec_a, rows_a), (spec_b, rows_b) = finished_shard(cfg, 0), finished_shard(cfg, 1)
    batch = pa.concat_tables([_sized(rows_a, spec_a.num_rows), _sized(rows_b, spec_b.num_rows).slice(0, 2)])
    pieces = {p["shard"]: p for p in PieceWriter(cfg, "sha256:test")(batch).to_pylist()}
    whole, part = pieces[spec_a.shard_id], pieces[spec_b.shard_id]
    assert whole["final"] and f"/data/{spec_a.shard_id}." in whole["data_file"]
    assert whole["rows_written"] + whole["rows_rejected"] == spec_a.num_rows
    assert not part["final"] and "/_staging/adhoc/" in part["data_file"] and len(part["keys"]) == 2
    assert all(storage.exists(p[name]) for p in pieces.values() for name in ("data_file", "rejects_file"))
    assert storage.list_names(f"{cfg.output.uri}/_staging/adhoc") == [spec_b.shard_id]


def test_rows_without_their_shard_size_or_with_a_repeated_key_are_staged(local_config):
    cfg = local_config()
    _, rows = finished_shard(cfg)
    keys = rows.column("key").to_pylist()
    assert whole_shard(_sized(rows, rows.num_rows), keys)
    assert not whole_shard(rows, keys)  # no size: rows that did not come through the read step
    assert not whole_shard(_sized(rows, rows.num_rows + 1), keys)  # a row still to come
    doubled = pa.concat_tables([rows.slice(0, 1), rows.slice(0, rows.num_rows - 1)])
    assert not whole_shard(_sized(doubled, rows.num_rows), doubled.column("key").to_pylist())
