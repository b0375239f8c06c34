import shutil

import pytest

from finecap.config import ConfigError, load_config, parse_override
from finecap.stages.fingerprints import config_hash
from tests.conftest import LOCAL_YAML


def test_local_pipeline_loads_with_documented_keys():
    cfg = load_config(LOCAL_YAML)
    assert cfg.source.shard_size >= 1
    assert cfg.fetch.allow_private_addresses is False
    assert cfg.caption.captioners[0].model.startswith("tiny:")


def test_set_overrides_are_typed_from_yaml():
    cfg = load_config(LOCAL_YAML, ["source.shard_size=3", "caption.captioners.0.max_tokens=12"])
    assert cfg.source.shard_size == 3
    assert cfg.caption.captioners[0].max_tokens == 12
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])


@pytest.mark.parametrize(
    "override, key",
    [
        ("source.shard_sise=4", "'source.shard_sise'"),
        ("caption.captioners.0.modle=x", "'caption.captioners.0.modle'"),
        ("limits.max_pixels=0", "limits.max_pixels"),
        ("caption.captioners.0.prompt=nope/v9", "caption.captioners.0.prompt"),
        ("ocr.device=gpu", "ocr.device"),
        ("ocr.rec_batch_size=0", "ocr.rec_batch_size"),
        ("ocr.probe_side=16", "ocr.probe_side"),
        ("detect.inference_batch_size=0", "detect.inference_batch_size"),
    ],
)
def test_bad_keys_fail_at_load_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(LOCAL_YAML, [override])


def test_misspelt_key_in_yaml_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(LOCAL_YAML.read_text().replace("shard_size:", "shard_sise:"))
    shutil.copytree(LOCAL_YAML.parent / "prompts", tmp_path / "prompts")
    with pytest.raises(ConfigError, match=r"unknown key 'source\.shard_sise' \(did you mean 'source\.shard_size'\?\)"):
        load_config(path)


def test_config_hash_ignores_run_and_output_but_not_content(tmp_path):
    base = config_hash(load_config(LOCAL_YAML))
    assert config_hash(load_config(LOCAL_YAML, ["run.num_cpus=1", "output.uri=/elsewhere"])) == base
    assert config_hash(load_config(LOCAL_YAML, ["source.shard_size=3"])) != base
    assert config_hash(load_config(LOCAL_YAML, ["caption.captioners.0.max_tokens=7"])) != base


def test_changing_a_prompt_text_changes_the_hash(tmp_path):
    shutil.copy(LOCAL_YAML, tmp_path / "p.yaml")
    shutil.copytree(LOCAL_YAML.parent / "prompts", tmp_path / "prompts")
    before = config_hash(load_config(tmp_path / "p.yaml"))
    prompt = tmp_path / "prompts" / "global_detailed" / "v1.txt"
    prompt.write_text(prompt.read_text() + " Be brief.")
    assert config_hash(load_config(tmp_path / "p.yaml")) != before


def test_duplicate_captioner_names_refused():
    with pytest.raises(ConfigError, match="names must be unique"):
        load_config(LOCAL_YAML, ["caption.captioners=[{name: a, model: x}, {name: a, model: y}]"])
