import json

import pyarrow.parquet as pq
import pytest

from finecap import storage
from finecap.runtime.commit import CommitError, ShardProgress, commit_shard, committed_manifests, route_piece
from finecap.stages.write import PieceWriter
from tests.runtime.helpers import finished_shard, stage_pieces

FACTS = {"config_hash": "sha256:test", "models": [], "schema_version": "v1"}


def _commit(cfg, pieces, spec):
    progress = ShardProgress(spec.shard_id, spec.num_rows)
    for piece in pieces:
        progress.add(piece)
    assert progress.complete
    return commit_shard(cfg.output.uri, progress, FACTS, "zstd")


def test_commit_writes_data_rejects_then_manifest_and_clears_staging(local_config):
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    manifest = _commit(cfg, stage_pieces(cfg, rows), spec)
    out = cfg.output.uri
    data = pq.read_table(f"{out}/data/{spec.shard_id}.parquet")
    rejects = pq.read_table(f"{out}/rejects/{spec.shard_id}.parquet")
    assert data.num_rows + rejects.num_rows == spec.num_rows == manifest["rows_in"]
    assert rejects.column("reason").to_pylist() == ["decode_error"]  # broken.jpg is in shard 0
    assert data.column("key").to_pylist() == sorted(data.column("key").to_pylist())
    assert manifest["rejects_by_reason"] == {"prepare/decode_error": 1}
    assert set(manifest["stage_seconds"]) == {"prepare"}
    assert json.loads(storage.read_bytes(f"{out}/_manifest/{spec.shard_id}.json"))["rows_in"] == spec.num_rows
    assert not storage.exists(f"{out}/_staging/adhoc/{spec.shard_id}")
    assert set(committed_manifests(out)) == {spec.shard_id}


def test_pieces_staged_twice_are_written_once(local_config):
    """A retried task stages the same rows again: first piece wins, keys stay unique."""
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    pieces = stage_pieces(cfg, rows, splits=2)
    again = stage_pieces(cfg, rows, splits=3)  # other batch boundaries, same rows
    manifest = _commit(cfg, pieces[:1] + again + pieces[1:], spec)
    data = pq.read_table(f"{cfg.output.uri}/data/{spec.shard_id}.parquet")
    keys = data.column("key").to_pylist()
    assert len(keys) == len(set(keys)) == manifest["rows_written"]
    assert manifest["rows_written"] + manifest["rows_rejected"] == spec.num_rows


def test_incomplete_shard_is_not_complete_and_a_short_commit_raises(local_config):
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    pieces = stage_pieces(cfg, rows, splits=2)
    progress = ShardProgress(spec.shard_id, spec.num_rows)
    progress.add(pieces[0])
    assert not progress.complete
    progress.rows_in = len(progress.keys) + 1  # one row never arrived
    with pytest.raises(CommitError, match="rows in"):
        commit_shard(cfg.output.uri, progress, FACTS, None)
    assert committed_manifests(cfg.output.uri) == {}


def test_a_commit_reads_and_deletes_only_its_own_runs_pieces(local_config):
    """Two runs stage the same shard: run a's commit leaves run b's pieces alone (and vice versa)."""
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    mine = PieceWriter(cfg, "sha256:test", run_id="a")(rows).to_pylist()
    theirs = PieceWriter(cfg, "sha256:test", run_id="b")(rows).to_pylist()
    progress = ShardProgress(spec.shard_id, spec.num_rows, run_id="a")
    for piece in theirs + mine:  # b's pieces come first: a must not take them
        progress.add(piece)
    assert progress.pieces == mine
    manifest = commit_shard(cfg.output.uri, progress, FACTS, None)
    assert manifest["rows_in"] == spec.num_rows
    out = cfg.output.uri
    assert not storage.exists(f"{out}/_staging/a/{spec.shard_id}")
    assert all(storage.exists(p["data_file"]) for p in theirs)


def test_a_piece_arriving_after_its_shard_committed_is_ignored(local_config):
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    pieces = stage_pieces(cfg, rows, splits=2)
    progress = {spec.shard_id: ShardProgress(spec.shard_id, spec.num_rows)}
    assert route_piece(progress, pieces[0]) is None
    done = route_piece(progress, pieces[1])
    assert done is not None and done.complete and progress == {}
    commit_shard(cfg.output.uri, done, FACTS, None)
    late = stage_pieces(cfg, rows, splits=3)  # a retried task reports the same rows again
    assert [route_piece(progress, piece) for piece in late] == [None] * len(late)
    assert route_piece(progress, {**late[0], "shard": "part-999999"}) is None  # never planned
