import json
import shutil

import pyarrow as pa
import pytest

from finecap import storage
from finecap.dataset import committed_shards, orphan_data_files, read_data, read_rejects, writer
from finecap.dedup import DedupError, run_dedup
from finecap.dedup import run as dedup_run
from finecap.validate import validate_output
from tests.dedup.helpers import DISTINCT, EXACT, NEAR, build_output


def _tables(out):
    """The committed rows (the files the manifests name), data and rejects."""
    shards = committed_shards(str(out))
    data = pa.concat_tables([read_data(s) for s in shards]).to_pylist()
    rejects = pa.concat_tables([read_rejects(s) for s in shards]).to_pylist()
    return data, rejects


def _snapshot(out):
    """Everything a reader sees, minus commit timestamps and the versions' random file tags."""
    files = {}
    for shard in committed_shards(str(out)):
        manifest = {k: v for k, v in shard.manifest.items() if k not in ("committed_at", "files")}
        files[shard.shard_id] = {"data": read_data(shard).to_pylist(), "rejects": read_rejects(shard).to_pylist(),
                                 "manifest": manifest}
    return files


@pytest.fixture
def built(tmp_path):
    return build_output(tmp_path)


def test_planted_duplicates_go_to_rejects_naming_what_they_duplicate(built, tmp_path):
    summary = run_dedup(built)
    out = tmp_path / "out"
    data, rejects = _tables(out)
    dedup = {r["key"]: r for r in rejects if r["stage"] == "dedup"}
    assert {k: r["reason"] for k, r in dedup.items()} == {
        **dict.fromkeys(EXACT, "exact_duplicate"), **dict.fromkeys(NEAR, "near_duplicate")}
    for loser, winner in {**EXACT, **NEAR}.items():
        assert f"duplicate of {winner} " in dedup[loser]["detail"], dedup[loser]
    kept = {r["key"] for r in data}
    assert kept.isdisjoint(dedup) and set(EXACT.values()) | set(NEAR.values()) <= kept
    assert len(kept) == DISTINCT  # one image of each planted group, and every distinct one
    assert {f"orig-{i:02d}.png" for i in range(9, DISTINCT)} <= kept
    assert (summary.exact, summary.near) == (len(EXACT), len(NEAR))
    report = validate_output(str(out))
    assert report.ok and not report.orphans, (report.problems, report.orphans)  # old versions deleted
    rewritten = [s for s in committed_shards(str(out)) if s.manifest.get("dedup", {}).get("removed")]
    assert rewritten and all(s.manifest["files"]["data"] != f"data/{s.shard_id}.parquet" for s in rewritten)
    for manifest in (json.loads(p.read_text()) for p in (out / "_manifest").glob("*.json")):
        assert manifest["rows_written"] + manifest["rows_rejected"] == manifest["rows_in"]
        removed = sum(n for reason, n in manifest["rejects_by_reason"].items() if reason.startswith("dedup/"))
        assert removed == manifest.get("dedup", {}).get("removed", 0)


def test_a_rerun_changes_nothing(built, tmp_path):
    run_dedup(built)
    before = _snapshot(tmp_path / "out")
    again = run_dedup(built)
    assert again.already_done and (again.exact, again.near) == (len(EXACT), len(NEAR))
    assert _snapshot(tmp_path / "out") == before
    assert not [p for p in (tmp_path / "out" / "_dedup").iterdir() if p.is_dir()]  # work files cleared


def test_a_crash_while_applying_resumes_to_the_same_result(built, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    shutil.copytree(tmp_path / "out", clean)
    real = dedup_run.apply_to_shard
    calls = []

    def crash_after_one(*args):
        if calls:
            raise RuntimeError("killed")
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(dedup_run, "apply_to_shard", crash_after_one)
    with pytest.raises(RuntimeError, match="killed"):
        run_dedup(built)
    state = json.loads((tmp_path / "out" / "_dedup" / "state.json").read_text())
    assert state["phase"] == "decided" and calls
    monkeypatch.setattr(dedup_run, "apply_to_shard", real)
    resumed = run_dedup(built)
    assert (resumed.exact, resumed.near) == (len(EXACT), len(NEAR))
    run_dedup(_with_output(built, clean))
    assert _snapshot(tmp_path / "out") == _snapshot(clean)


def _keys_per_shard(out):
    """Per shard, the keys of its committed data and rejects rows."""
    return {shard.shard_id: read_data(shard, ["key"]).column("key").to_pylist()
            + read_rejects(shard, ["key"]).column("key").to_pylist() for shard in committed_shards(str(out))}


def test_a_kill_between_the_rewrites_file_writes_leaves_the_old_version(built, tmp_path, monkeypatch):
    out = tmp_path / "out"
    before, snapshot = _keys_per_shard(out), _snapshot(out)
    clean = tmp_path / "clean"
    shutil.copytree(out, clean)
    real, writes = writer.write_parquet, []

    def killed_after_first_write(*args):
        if writes:
            raise KeyboardInterrupt("killed between the two writes")  # the process dies here
        writes.append(args[0])
        real(*args)

    monkeypatch.setattr(writer, "write_parquet", killed_after_first_write)
    with pytest.raises(KeyboardInterrupt):
        run_dedup(built)
    assert len(writes) == 1
    assert _snapshot(out) == snapshot  # the committed view: untouched, every row once
    assert orphan_data_files(str(out)) == [writes[0]]  # the new version's data file, never named
    assert not (out / "_lock.json").exists()  # released on the way out
    monkeypatch.setattr(writer, "write_parquet", real)
    resumed = run_dedup(built)
    assert (resumed.exact, resumed.near) == (len(EXACT), len(NEAR))
    report = validate_output(str(out))
    assert report.ok and not report.orphans, (report.problems, report.orphans)
    for shard, keys in _keys_per_shard(out).items():
        assert len(keys) == len(set(keys)) and set(keys) == set(before[shard])  # every row exactly once
    run_dedup(_with_output(built, clean))
    assert _snapshot(out) == _snapshot(clean)


def test_dedup_holds_the_output_lock(built, tmp_path):
    from finecap.runtime.lock import OutputLock

    build = OutputLock(str(tmp_path / "out"), 30.0, 5.0).acquire()
    try:
        with pytest.raises(DedupError, match="is being built by"):
            run_dedup(built)
    finally:
        build.release()
    run_dedup(built)


def _with_output(config, out):
    from dataclasses import replace

    return replace(config, output=replace(config.output, uri=str(out)))


def test_only_complete_builds_of_the_same_config_are_deduplicated(built, tmp_path, local_config):
    with pytest.raises(DedupError, match="not committed yet"):
        run_dedup(built, planned_shards=["part-000000", "part-000099"])
    other = _with_output(local_config(), tmp_path / "out")
    from finecap.stages.fingerprints import config_hash

    with pytest.raises(DedupError, match="built with config"):
        run_dedup(other, config_hash=config_hash(other))
    storage.remove(committed_shards(str(tmp_path / "out"))[1].data_uri)
    with pytest.raises(DedupError, match="missing"):
        run_dedup(built)


def test_dedup_command_line(built, tmp_path, capsys):
    from finecap.cli import main
    from tests.conftest import LOCAL_YAML

    args = ["dedup", str(tmp_path / "out"), "--config", str(LOCAL_YAML), "--input", str(tmp_path / "images"),
            "--set", "source.shard_size=4", "--set", "filter.min_short_side=100", "--set", "caption.enabled=false"]
    args += [a for key in ("phrases", "detect", "ocr", "regions") for a in ("--set", f"{key}.enabled=false")]
    assert main(args) == 0
    assert f"dedup: {len(EXACT)} exact and {len(NEAR)} near duplicates" in capsys.readouterr().out
    other = [a.replace("min_short_side=100", "min_short_side=101") for a in args]
    assert main(other) == 2  # another config: refused
    assert "built with config" in capsys.readouterr().err


def _check_partitioned(tmp_path, config, partitions):
    summary = run_dedup(config)
    state = json.loads((tmp_path / "out" / "_dedup" / "state.json").read_text())
    assert state["partitions"] == partitions and state["phase"] == "applied"
    assert (summary.exact, summary.near) == (len(EXACT), len(NEAR))
    _, rejects = _tables(tmp_path / "out")
    dedup = {r["key"]: r["detail"] for r in rejects if r["stage"] == "dedup"}
    assert all(f"duplicate of {winner} " in dedup[loser] for loser, winner in {**EXACT, **NEAR}.items())
    assert validate_output(str(tmp_path / "out")).ok


def test_partitioned_run_makes_the_same_decisions(tmp_path, monkeypatch):
    """rows_per_partition=4 cuts the 21 rows into 6 partitions (steps run here; the same steps
    run as Ray tasks in tests/stages/test_fetch_build.py)."""
    import contextlib

    @contextlib.contextmanager
    def here(config, partitions):
        yield lambda fn, args: [fn(*a) for a in args]

    monkeypatch.setattr(dedup_run, "_executor", here)
    _check_partitioned(tmp_path, build_output(tmp_path, "dedup.rows_per_partition=4"), 6)


def test_dedup_keys_are_checked_at_load(local_config):
    from finecap.config import ConfigError

    assert local_config("dedup.near_threshold=4").dedup.near_threshold == 4
    with pytest.raises(ConfigError, match=r"unknown key 'dedup.near_treshold' \(did you mean 'dedup.near_threshold'\?\)"):
        local_config("dedup.near_treshold=4")
    with pytest.raises(ConfigError, match="dedup.near_blocks: must be more than dedup.near_threshold"):
        local_config("dedup.near_threshold=8")
    with pytest.raises(ConfigError, match="dedup.near_threshold: must be <= 32"):
        local_config("dedup.near_threshold=40", "dedup.near_blocks=64")
