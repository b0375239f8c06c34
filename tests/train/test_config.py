import pytest

from finecap.train.config import load_train_config, phase_at
from finecap.typed_config import ConfigError

from .conftest import TINY_YAML


def test_tiny_config_loads_with_cli_paths(tmp_path):
    cfg = load_train_config(TINY_YAML, ["stage2.steps=7"], **{"data.uri": "d", "run.output": str(tmp_path)})
    assert cfg.stage2.steps == 7 and cfg.data.uri == "d"
    assert cfg.stage_dir("stage3") == tmp_path / "stage3"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stage2.optim.lrr=1", "unknown key 'stage2.optim.lrr'"),
        ("stage1.mask_ratio=1.5", "stage1.mask_ratio: must be <= 0.95"),
        ("run.precision=fp8", "run.precision: must be one of"),
        ("stage3.tasks.dance=1", "stage3.tasks: unknown task 'dance'"),
        ("model.vision.preset=huge", "model.vision.preset: unknown 'huge'"),
        ("stage1.teacher.kind=hf", "stage1.teacher.model: required"),
    ],
)
def test_bad_keys_fail_in_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        load_train_config(TINY_YAML, [override])
    assert "\n" not in str(info.value)


def test_phases_must_increase(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("stage2:\n  phases: [{until_step: 10}, {until_step: 5}, {}]\n")
    with pytest.raises(ConfigError, match="until_step must increase"):
        load_train_config(path)


def test_phase_at_follows_the_curriculum():
    cfg = load_train_config(TINY_YAML)
    first, last = cfg.stage2.phases
    assert phase_at(cfg.stage2, 0) == (0, first)
    assert phase_at(cfg.stage2, first.until_step - 1) == (0, first)
    assert phase_at(cfg.stage2, first.until_step) == (1, last)
