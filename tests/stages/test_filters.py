import pyarrow as pa
import pytest

from finecap.config import ConfigError, FilterConfig
from finecap.stages.filters import FilterStage, filter_reason
from finecap.stages.prepare import PrepareStage
from tests.conftest import png_bytes

GOOD = {"blur": 500.0, "brightness": 0.45, "clipped": 0.01, "saturation": 0.3}


def test_paper_defaults():
    cfg = FilterConfig()
    assert (cfg.min_short_side, cfg.max_aspect_ratio) == (448, 3.0)


@pytest.mark.parametrize(
    "size, quality, reason",
    [
        ((640, 448), {}, None),
        ((447, 900), {}, "too_small"),
        ((1344, 448), {}, None),  # exactly 3:1
        ((1345, 448), {}, "bad_aspect_ratio"),
        ((448, 1345), {}, "bad_aspect_ratio"),  # 1:3 the other way
        ((640, 480), {"blur": 14.9}, "blurry"),
        ((640, 480), {"brightness": 0.05}, "too_dark"),
        ((640, 480), {"brightness": 0.9}, "too_bright"),
        ((640, 480), {"clipped": 0.5}, "clipped"),
        ((640, 480), {"saturation": 0.9}, "oversaturated"),
        ((640, 480), {"brightness": 0.02, "blur": 1.0}, "too_dark"),  # exposure says more than blur
    ],
)
def test_rules(size, quality, reason):
    found = filter_reason(*size, {**GOOD, **quality}, FilterConfig())
    assert (found[0] if found else None) == reason
    if found:
        assert "filter." in found[1]  # the detail names the key to change


def test_null_threshold_turns_a_rule_off():
    assert filter_reason(640, 480, {**GOOD, "blur": 0.0}, FilterConfig(min_blur=None)) is None


def test_thresholds_come_from_the_yaml_and_bad_keys_fail(local_config):
    cfg = local_config("filter.min_short_side=40", "filter.max_saturation=null").filter
    assert cfg.min_short_side == 40 and cfg.max_saturation is None
    with pytest.raises(ConfigError, match=r"unknown key 'filter.min_shortside' \(did you mean 'filter.min_short_side'\?\)"):
        local_config("filter.min_shortside=40")
    with pytest.raises(ConfigError, match="filter.max_aspect_ratio: must be >= 1.0"):
        local_config("filter.max_aspect_ratio=0.5")
    with pytest.raises(ConfigError, match="filter.min_brightness: must be <= 1"):
        local_config("filter.min_brightness=3")


def test_stage_marks_rejects_and_keeps_the_rest(local_config):
    config = local_config("filter.min_short_side=60")
    blobs = [png_bytes((64, 64)), png_bytes((200, 50)), png_bytes((40, 40))]
    batch = pa.table({"key": ["ok", "wide", "small"], "shard": ["part-000000"] * 3, "image_bytes": pa.array(blobs)})
    out = {r["key"]: r for r in FilterStage(config)(PrepareStage(config)(batch)).to_pylist()}
    assert out["ok"]["reject_stage"] is None
    assert (out["small"]["reject_stage"], out["small"]["reject_reason"]) == ("filter", "too_small")
    assert out["wide"]["reject_reason"] == "too_small"  # 50 px short side fails before the aspect rule
    assert FilterStage.enabled(config) and not FilterStage.enabled(local_config("filter.enabled=false"))


def test_defaults_drop_about_3_percent_of_ordinary_photos_and_catch_defects():
    """The measurement behind the defaults (benchmarks/filter_thresholds.py), on fewer views."""
    from benchmarks.filter_thresholds import corpus, rates

    ordinary, degraded = corpus(views_per_photo=10, seed=0)
    result = rates(ordinary, degraded, FilterConfig())
    assert 0.005 <= result["ordinary_removed"] <= 0.06, result
    caught = result["degraded_caught"]
    assert caught["blur"] >= 0.95 and caught["dark"] >= 0.6 and caught["bright"] >= 0.5, result
