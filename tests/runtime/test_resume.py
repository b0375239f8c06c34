import pytest

from finecap import storage
from finecap.runtime import runner
from finecap.runtime.commit import ShardProgress, commit_shard
from finecap.runtime.resume import (
    NotAFinecapOutput,
    ResumeRefused,
    check_ownership,
    clear_stale_staging,
    committed_for_run,
    mark_output,
)
from finecap.runtime.runner import run_build
from finecap.stages.write import PieceWriter
from tests.runtime.helpers import finished_shard, stage_pieces
from tests.test_storage_s3 import prefix, s3_env  # noqa: F401 (fixtures)


def _commit_one(cfg, chash):
    spec, rows = finished_shard(cfg)
    progress = ShardProgress(spec.shard_id, spec.num_rows)
    for piece in stage_pieces(cfg, rows, chash):
        progress.add(piece)
    commit_shard(cfg.output.uri, progress, {"config_hash": chash, "models": []}, None)
    return spec.shard_id


def test_a_rerun_finds_the_committed_shards_whatever_their_config(local_config):
    cfg = local_config()
    shard = _commit_one(cfg, "sha256:aaa")
    assert set(committed_for_run(cfg.output.uri, resume=True)) == {shard}  # the build plan decides


def test_no_resume_starts_over(local_config):
    cfg = local_config()
    _commit_one(cfg, "sha256:aaa")
    assert committed_for_run(cfg.output.uri, resume=False) == {}
    assert not storage.exists(storage.join(cfg.output.uri, "data"))


def _foreign(folder):
    """A folder someone else owns, with names a FineCap output also uses."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "thesis.csv").write_text("a,b\n")
    (folder / "README.md").write_text("# my project\n")
    return folder


def test_a_folder_that_is_not_a_finecap_output_is_refused_and_left_alone(local_config, tmp_path):
    out = _foreign(tmp_path / "mine")
    cfg = local_config(**{"output.uri": str(out)})
    for resume in (False, True):
        with pytest.raises(NotAFinecapOutput, match=f"^{out} is not empty and is not a FineCap output") as refused:
            run_build(cfg, resume=resume)  # refused before any work: no Ray, no lock
        assert "\n" not in str(refused.value)
        assert sorted(p.name for p in out.rglob("*")) == ["README.md", "data", "thesis.csv"]
    with pytest.raises(NotAFinecapOutput):
        committed_for_run(str(out), resume=False)
    assert (out / "data" / "thesis.csv").exists() and (out / "README.md").exists()


def test_no_resume_deletes_only_what_a_finecap_output_is_made_of(local_config):
    cfg = local_config()
    _commit_one(cfg, "sha256:aaa")  # an output of before the marker: recognised by its manifests
    out = cfg.output.uri
    storage.write_bytes(storage.join(out, "notes.txt"), b"mine")
    check_ownership(out)
    committed_for_run(out, resume=False)
    assert storage.list_names(out) == ["notes.txt"]
    mark_output(out)  # a build marks the output it owns, so an empty one is still ours
    check_ownership(out)


def test_empty_missing_and_scratch_only_folders_are_fine(tmp_path):
    check_ownership(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    check_ownership(str(tmp_path / "empty"))
    scratch = tmp_path / "killed-before-any-commit"  # a run killed before its first commit
    (scratch / "_staging" / "abc" / "part-000000").mkdir(parents=True)
    (scratch / "_lock.json").write_text("{}")
    check_ownership(str(scratch))


def test_a_failing_build_releases_its_lock(local_config, monkeypatch):
    cfg = local_config()
    _commit_one(cfg, "sha256:aaa")

    def refused(*args):
        raise ResumeRefused("planned inside the lock, then refused")

    monkeypatch.setattr(runner, "plan_build", refused)
    with pytest.raises(ResumeRefused, match="then refused"):
        run_build(cfg)
    assert not storage.exists(storage.join(cfg.output.uri, "_lock.json"))

    def interrupted(*args):
        assert storage.exists(storage.join(cfg.output.uri, "_lock.json"))  # held here
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "committed_for_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_build(cfg)
    assert not storage.exists(storage.join(cfg.output.uri, "_lock.json"))


def test_a_new_run_deletes_the_staging_of_runs_whose_lock_is_gone(local_config):
    cfg = local_config()
    spec, rows = finished_shard(cfg)
    stage_pieces(cfg, rows)  # pieces of an earlier run ("adhoc"), killed before it committed
    legacy = storage.join(cfg.output.uri, "_staging", spec.shard_id)  # the layout before run ids
    storage.write_bytes(storage.join(legacy, "x.data.arrow"), b"")
    PieceWriter(cfg, "sha256:test", run_id="live")(rows)
    clear_stale_staging(cfg.output.uri, "live")
    assert storage.list_names(storage.join(cfg.output.uri, "_staging")) == ["live"]


def test_ownership_on_s3(request, local_config):
    root = request.getfixturevalue("prefix")  # moto on 127.0.0.1 (tests/test_storage_s3.py)
    foreign = f"{root}/foreign"
    storage.write_bytes(f"{foreign}/data/thesis.csv", b"a,b\n")
    with pytest.raises(NotAFinecapOutput, match=f"^{foreign} is not empty"):
        check_ownership(foreign)
    check_ownership(f"{root}/missing")
    ours = local_config(**{"output.uri": f"{root}/ours"})
    _commit_one(ours, "sha256:aaa")
    check_ownership(ours.output.uri)
    storage.write_bytes(f"{ours.output.uri}/notes.txt", b"mine")
    committed_for_run(ours.output.uri, resume=False)
    assert storage.list_names(ours.output.uri) == ["notes.txt"]
