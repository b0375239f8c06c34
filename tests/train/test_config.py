import pytest

from finecap.train.config import load_train_config, phase_at
from finecap.typed_config import ConfigError

from .conftest import REPO, TINY_YAML

TRAIN_YAMLS = sorted((REPO / "pipelines").glob("train-*.yaml"))


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
        ("model.text.freeze_until_step=-1", "model.text.freeze_until_step: must be >= 0"),
        ("model.text.lr_scale=-0.1", "model.text.lr_scale: must be >= 0"),
        ("model.text.pooling=max", "model.text.pooling: must be one of"),
        ("model.lm.freeze_until_step=5", "unknown key 'model.lm.freeze_until_step'"),
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


@pytest.mark.parametrize("path", TRAIN_YAMLS, ids=lambda p: p.name)
def test_every_training_config_loads(path):
    load_train_config(path)


def test_the_papers_config_starts_stage2_from_siglip2_frozen_then_unfrozen():
    from finecap.train.stage2 import phase_start

    config = load_train_config(REPO / "pipelines" / "train-finevit.yaml")
    text = config.model.text
    assert text.model == "google/siglip2-so400m-patch14-384" and text.pooling == "model"
    assert text.freeze_until_step > 0 and 0 < text.lr_scale < 1
    # SigLIP2 has 64 positions: the freeze ends before the 256-token phase uses new ones
    assert text.freeze_until_step <= phase_start(config.stage2, 64) == 70000
