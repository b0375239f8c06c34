import pytest

from finecap import storage
from finecap.runtime.commit import ShardProgress, commit_shard
from finecap.runtime.resume import ResumeRefused, committed_for_run
from tests.runtime.helpers import finished_shard, stage_pieces


def _commit_one(cfg, chash):
    spec, rows = finished_shard(cfg)
    progress = ShardProgress(spec.shard_id, spec.num_rows)
    for piece in stage_pieces(cfg, rows, chash):
        progress.add(piece)
    commit_shard(cfg.output.uri, progress, {"config_hash": chash, "models": []}, None)
    return spec.shard_id


def test_same_config_resumes_and_other_config_refuses(local_config):
    cfg = local_config()
    shard = _commit_one(cfg, "sha256:aaa")
    assert set(committed_for_run(cfg.output.uri, "sha256:aaa", resume=True)) == {shard}
    with pytest.raises(ResumeRefused, match="--no-resume"):
        committed_for_run(cfg.output.uri, "sha256:bbb", resume=True)


def test_no_resume_starts_over(local_config):
    cfg = local_config()
    _commit_one(cfg, "sha256:aaa")
    assert committed_for_run(cfg.output.uri, "sha256:bbb", resume=False) == {}
    assert not storage.exists(storage.join(cfg.output.uri, "data"))
