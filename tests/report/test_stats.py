import json

from finecap import storage
from finecap.report.stats import collect_stats, write_report
from finecap.runtime.commit import ShardProgress, commit_shard
from tests.runtime.helpers import finished_shard, stage_pieces


def test_stats_count_rows_rejects_and_captions(local_config):
    cfg = local_config("source.shard_size=6")
    for index in range(2):
        spec, rows = finished_shard(cfg, index)
        progress = ShardProgress(spec.shard_id, spec.num_rows)
        for piece in stage_pieces(cfg, rows):
            progress.add(piece)
        commit_shard(cfg.output.uri, progress, {"config_hash": "h", "models": []}, None)
    stats = collect_stats(cfg.output.uri)
    assert (stats["shards"], stats["rows"], stats["rejects"]) == (2, 10, 1)
    assert stats["rejects_by_reason"] == {"prepare/decode_error": 1}
    assert stats["captions"]["m"]["captions"] == 10 and stats["captions"]["m"]["mean_tokens"] == 2
    assert stats["stage_seconds"]["prepare"] > 0
    path = write_report(cfg.output.uri)
    assert json.loads(storage.read_bytes(path))["rows"] == 10
