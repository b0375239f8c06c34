import json
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from finecap import storage
from finecap.dataset.writer import read_manifest, remove_orphans
from finecap.runtime.commit import CommitError, ShardProgress, commit_shard, committed_manifests, route_piece
from finecap.stages.base import counts_column
from finecap.stages.write import SHARD_ROWS, PieceWriter
from tests.runtime.helpers import finished_shard, stage_pieces
from tests.test_storage_s3 import prefix, s3_env  # noqa: F401 (fixtures)

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


def _arrived_whole(rows, spec):
    """Rows as the read step hands them on: each carries its shard's size."""
    return rows.append_column(SHARD_ROWS, pa.array([spec.num_rows] * rows.num_rows, pa.int64()))


def test_a_shard_in_one_batch_is_written_by_its_worker_and_committed_without_staging(local_config, tmp_path):
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    out = cfg.output.uri
    (piece,) = PieceWriter(cfg, "sha256:test")(_arrived_whole(rows, spec)).to_pylist()
    assert piece["final"] and not storage.exists(f"{out}/_staging")  # nothing staged
    progress = {spec.shard_id: ShardProgress(spec.shard_id, spec.num_rows)}
    manifest = commit_shard(out, route_piece(progress, piece), FACTS, "zstd")
    assert manifest["files"]["data"] == "data/" + piece["data_file"].rsplit("/", 1)[-1]
    assert json.loads(storage.read_bytes(f"{out}/_manifest/{spec.shard_id}.json")) == manifest
    # The same files and counts as the staged path commits for the same rows.
    staged_cfg = local_config(**{"output.uri": str(tmp_path / "staged")})
    staged = _commit(staged_cfg, stage_pieces(staged_cfg, rows), spec)
    for kind in ("data", "rejects"):
        direct_rows = pq.read_table(f"{out}/{manifest['files'][kind]}")
        assert direct_rows.equals(pq.read_table(f"{staged_cfg.output.uri}/{staged['files'][kind]}")), kind
    for name in ("rows_in", "rows_written", "rows_rejected", "rejects_by_reason", "stage_seconds"):
        assert manifest[name] == staged[name], name


def test_a_duplicate_report_of_a_whole_shard_commits_once(local_config):
    """A retried task writes the whole shard again: the first report commits, the second's files are orphans."""
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    out, whole = cfg.output.uri, _arrived_whole(rows, spec)
    first = PieceWriter(cfg, "sha256:test")(whole).to_pylist()[0]
    again = PieceWriter(cfg, "sha256:test")(whole).to_pylist()[0]
    assert first["data_file"] != again["data_file"]  # never the same name twice
    progress = {spec.shard_id: ShardProgress(spec.shard_id, spec.num_rows)}
    manifest = commit_shard(out, route_piece(progress, first), FACTS, "zstd")
    assert route_piece(progress, again) is None
    assert read_manifest(out, spec.shard_id) == manifest
    assert [f"{out}/{manifest['files'][kind]}" for kind in ("data", "rejects")] == [first["data_file"],
                                                                                   first["rejects_file"]]
    assert sorted(remove_orphans(out)) == sorted([again["data_file"], again["rejects_file"]])
    assert pq.read_table(first["data_file"]).num_rows == manifest["rows_written"]


def test_a_whole_report_replaces_staged_pieces_and_the_first_whole_report_wins(local_config):
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    staged = stage_pieces(cfg, rows, splits=2)
    whole = [PieceWriter(cfg, "sha256:test")(_arrived_whole(rows, spec)).to_pylist()[0] for _ in range(2)]
    other_run = PieceWriter(cfg, "sha256:test", run_id="b")(_arrived_whole(rows, spec)).to_pylist()[0]
    progress = ShardProgress(spec.shard_id, spec.num_rows)
    for piece in (staged[0], other_run, whole[0], whole[1], staged[1]):
        progress.add(piece)
    assert progress.complete and progress.final_piece == whole[0] and progress.pieces == [whole[0]]
    manifest = commit_shard(cfg.output.uri, progress, FACTS, None)
    assert f"{cfg.output.uri}/{manifest['files']['data']}" == whole[0]["data_file"]
    assert not storage.exists(f"{cfg.output.uri}/_staging/adhoc/{spec.shard_id}")  # the staged half: gone


def test_a_whole_report_whose_file_is_gone_is_not_committed(local_config):
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    (piece,) = PieceWriter(cfg, "sha256:test")(_arrived_whole(rows, spec)).to_pylist()
    storage.remove(piece["rejects_file"])
    progress = {spec.shard_id: ShardProgress(spec.shard_id, spec.num_rows)}
    with pytest.raises(CommitError, match="is missing"):
        commit_shard(cfg.output.uri, route_piece(progress, piece), FACTS, None)
    assert committed_manifests(cfg.output.uri) == {}


def test_a_shard_in_one_batch_commits_on_s3(request, local_config):
    out = request.getfixturevalue("prefix")  # moto on 127.0.0.1 (tests/test_storage_s3.py)
    cfg = local_config(**{"output.uri": out})
    spec, rows = finished_shard(cfg)
    (piece,) = PieceWriter(cfg, "sha256:test")(_arrived_whole(rows, spec)).to_pylist()
    assert piece["final"] and piece["data_file"].startswith(f"{out}/data/")
    manifest = commit_shard(out, route_piece({spec.shard_id: ShardProgress(spec.shard_id, spec.num_rows)}, piece),
                            FACTS, "zstd")
    assert read_manifest(out, spec.shard_id) == manifest
    assert storage.list_files(f"{out}/data") == [piece["data_file"]] and remove_orphans(out) == []


def _with_failures(rows: pa.Table) -> tuple[pa.Table, dict]:
    """Rows with the regions stage's per-row failure counts (rejected rows too), and what the
    manifest must say: the written rows' sums."""
    written = pc.is_null(rows.column("reject_stage")).to_pylist()
    assert not all(written)  # broken.jpg: its counts must not reach the manifest
    per_row = [Counter({"refusal": 1, **({"engine_error": 2} if i % 2 else {})}) if i % 3 else Counter()
               for i in range(rows.num_rows)]
    per_row = [c if w else Counter({"engine_error": 7}) for c, w in zip(per_row, written, strict=True)]
    expected = sum((c for c, w in zip(per_row, written, strict=True) if w), Counter())
    return rows.append_column("_counts_region_caption_failures", counts_column(per_row)), dict(sorted(expected.items()))


def test_stage_counts_reach_the_manifest_once_per_written_row(local_config, tmp_path):
    """Staged pieces, a retried task's pieces over other batch boundaries, a whole-shard report:
    each commits the sums over the rows it writes, each key once, as region_caption_failures."""
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    rows, expected = _with_failures(rows)
    assert expected["refusal"] > 0
    pieces = stage_pieces(cfg, rows, splits=2)
    again = stage_pieces(cfg, rows, splits=3)
    staged = _commit(cfg, pieces[:1] + again + pieces[1:], spec)
    assert staged["region_caption_failures"] == expected
    assert "_counts_region_caption_failures" not in pq.read_table(f"{cfg.output.uri}/{staged['files']['data']}").schema.names
    whole_cfg = local_config(**{"output.uri": str(tmp_path / "whole")})
    (piece,) = PieceWriter(whole_cfg, "sha256:test")(_arrived_whole(rows, spec)).to_pylist()
    progress = {spec.shard_id: ShardProgress(spec.shard_id, spec.num_rows)}
    whole = commit_shard(whole_cfg.output.uri, route_piece(progress, piece), FACTS, "zstd")
    assert whole["region_caption_failures"] == expected == read_manifest(whole_cfg.output.uri, spec.shard_id)[
        "region_caption_failures"]


def test_a_shard_no_stage_counted_on_has_no_counts_in_its_manifest(local_config):
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    assert "region_caption_failures" not in _commit(cfg, stage_pieces(cfg, rows), spec)


def test_a_rebuild_that_keeps_the_regions_carries_their_counts_over(local_config, tmp_path):
    """The kept rows' counts come from the committed manifest; this run's rows add to them."""
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    rows, expected = _with_failures(rows)
    (piece,) = PieceWriter(cfg, "sha256:test")(_arrived_whole(rows, spec)).to_pylist()
    progress = {spec.shard_id: ShardProgress(spec.shard_id, spec.num_rows,
                                             carried={"region_caption_failures": {"engine_error": 2}})}
    manifest = commit_shard(cfg.output.uri, route_piece(progress, piece), FACTS, "zstd")
    assert manifest["region_caption_failures"] == dict(sorted((Counter(expected) + Counter(engine_error=2)).items()))
