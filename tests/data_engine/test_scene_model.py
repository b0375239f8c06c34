"""The scene model's cache key and the loop's pointing of `tiny:finevit-vl` at the trained folder."""

from __future__ import annotations

import pytest

from finecap.data_engine.loop import trained_model_overrides
from finecap.data_engine.scene_model import SceneModelSpec, cache_key
from finecap.errors import UserError
from finecap.models.registry import folder_name
from tests.conftest import LOCAL_YAML, REPO


def test_the_key_follows_what_decides_the_weights_and_nothing_else():
    base = cache_key(SceneModelSpec())
    assert cache_key(SceneModelSpec()) == base and len(base) == 12
    for changed in (SceneModelSpec(scenes=1999), SceneModelSpec(seed=1001), SceneModelSpec(width=321),
                    SceneModelSpec(overrides=("stage3.steps=501",))):
        assert cache_key(changed) != base
    assert cache_key(SceneModelSpec(overrides=("run.output=/elsewhere", "data.uri=/other"))) == base


def test_the_registry_folder_is_named_by_the_key():
    assert folder_name("finevit-vl") == f"finevit-vl-{cache_key(SceneModelSpec())}"
    assert folder_name("vlm-a") == "vlm-a"


def test_the_recipe_ships_with_the_package_and_parses():
    config = SceneModelSpec().train_config()
    assert config.stage3.caption == "shortest" and config.stage3.tasks["caption_to_box"] > 0


def test_every_trained_model_reference_of_the_loops_pipeline_is_pointed_at_the_folder(tmp_path):
    keys = trained_model_overrides(REPO / "pipelines" / "data-engine.yaml", tmp_path / "model")
    assert keys == [f"caption.captioners.0.model={tmp_path / 'model'}", f"regions.captioner.model={tmp_path / 'model'}",
                    f"detect.grounder.model={tmp_path / 'model'}"]


def test_a_pipeline_without_the_trained_model_is_refused(tmp_path):
    text = LOCAL_YAML.read_text().replace("tiny:finevit-vl", "tiny:vlm-a")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    (tmp_path / "prompts").symlink_to(LOCAL_YAML.parent / "prompts")
    with pytest.raises(UserError, match="uses no tiny:finevit-vl model"):
        trained_model_overrides(path, tmp_path / "model")
