import pytest

from finecap.config import ConfigError
from finecap.sources import make_source


def test_plan_is_deterministic_and_keys_are_relative_paths(local_config):
    cfg = local_config("source.shard_size=4")
    first, second = make_source(cfg).plan(), make_source(cfg).plan()
    assert first == second
    assert [s.shard_id for s in first] == ["part-000000", "part-000001", "part-000002"]
    assert [s.num_rows for s in first] == [4, 4, 3]
    keys = [item["key"] for s in first for item in s.items]
    assert keys == sorted(keys) and "sub/img00.png" in keys and "broken.jpg" in keys
    assert not any(k.endswith(".txt") for k in keys)


def test_keys_do_not_depend_on_shard_size(local_config):
    keys = lambda cfg: [i["key"] for s in make_source(cfg).plan() for i in s.items]  # noqa: E731
    assert keys(local_config("source.shard_size=2")) == keys(local_config("source.shard_size=5"))


def test_limit_and_glob(local_config, image_folder):
    assert sum(s.num_rows for s in make_source(local_config("source.limit=3")).plan()) == 3
    specs = make_source(local_config(**{"source.uri": str(image_folder / "sub" / "*.png")})).plan()
    assert [i["key"] for s in specs for i in s.items] == ["img00.png", "img03.png", "img06.png", "img09.png"]


def test_read_returns_bytes_and_marks_oversized_files(local_config):
    cfg = local_config("prepare.max_bytes=200")
    source = make_source(cfg)
    table = source.read(source.plan()[0])
    rows = table.to_pylist()
    assert table.num_rows == min(cfg.source.shard_size, 11)
    oversized = [r for r in rows if r["reject_reason"] == "too_many_bytes"]
    assert oversized and all(r["image_bytes"] is None and r["reject_stage"] == "read" for r in oversized)
    assert all(r["shard"] == "part-000000" and r["url"].startswith("file://") for r in rows)


def test_missing_input_is_a_config_error(local_config, tmp_path):
    with pytest.raises(ConfigError, match="source.uri"):
        make_source(local_config(**{"source.uri": str(tmp_path / "nope")})).plan()
