"""Per-stage fingerprints: semantic settings reach exactly the stages downstream; the rest never count."""

from __future__ import annotations

import pytest

from finecap.config import load_config
from finecap.stages.fingerprints import SOURCE, changed_settings, config_hash, pipeline_prints
from tests.conftest import LOCAL_YAML


def _prints(*overrides: str) -> dict[str, str]:
    config = load_config(LOCAL_YAML, list(overrides), **{"source.uri": "/data/images", "output.uri": "/out/a"})
    return {name: p.fingerprint for name, p in pipeline_prints(config).items()}


@pytest.fixture(scope="module")
def base() -> dict[str, str]:
    return _prints()


def _changed(base: dict, *overrides: str) -> set[str]:
    new = _prints(*overrides)
    assert set(new) == set(base)
    return {name for name in base if base[name] != new[name]}


def test_every_enabled_stage_has_a_fingerprint_in_pipeline_order(base):
    assert list(base) == [SOURCE, "prepare", "filter", "caption", "phrases", "detect", "ocr", "regions", "quality"]


@pytest.mark.parametrize("override", [
    "caption.captioners.0.engine_options.tensor_parallel_size=4",
    "caption.captioners.0.engine_options.gpu_memory_utilization=0.5",
    "caption.captioners.0.engine_options.max_num_seqs=128",
    "regions.captioner.engine_options.block_size=32",
    "caption.captioners.0.openai.base_urls=[http://10.0.0.5:8000/v1]",
    "caption.captioners.0.openai.retries=9",
    "regions.captioner.openai.timeout_s=5",
    "regions.requests_per_call=8",
    "detect.device=cpu",
    "detect.inference_batch_size=2",
    "ocr.threads=4",
    "ocr.rec_batch_size=2",
    "ocr.device=cuda",
    "fetch.thread_count=4",
    "fetch.timeout_s=3",
    "fetch.retries=4",
    "dedup.rows_per_partition=10",
    "caption.resources.batch_size=3",
    "caption.resources.concurrency=2",
    "detect.resources.num_gpus=1",
    "run.num_cpus=1",
    "run.batch_timeout_s=60",
    "output.uri=/elsewhere",
    "output.compression=snappy",
])
def test_settings_that_only_say_how_or_where_change_no_fingerprint(base, override):
    assert _changed(base, override) == set()


@pytest.mark.parametrize("override, stages", [
    ("regions.captioner.max_tokens=7", {"regions", "quality"}),
    ("regions.view=crop", {"regions", "quality"}),
    ("regions.view=shared", {"regions", "quality"}),
    ("ocr.min_score=0.9", {"ocr", "regions", "quality"}),
    ("ocr.probe_side=256", {"ocr", "regions", "quality"}),
    ("detect.box_threshold=0.5", {"detect", "regions", "quality"}),
    ("phrases.max_phrases=3", {"phrases", "detect", "regions", "quality"}),
    ("caption.captioners.0.max_tokens=7", {"caption", "phrases", "detect", "regions", "quality"}),
    ("filter.min_short_side=300", {"filter"}),
    ("prepare.model_max_side=224", {"prepare", "filter", "caption", "phrases", "detect", "ocr", "regions",
                                    "quality"}),
    ("source.shard_size=3", {SOURCE, "prepare", "filter", "caption", "phrases", "detect", "ocr", "regions",
                             "quality"}),
])
def test_a_semantic_setting_changes_its_stage_and_the_stages_reading_it(base, override, stages):
    assert _changed(base, override) == stages


def test_a_prompt_text_changes_the_stage_using_it(tmp_path, base):
    import shutil

    shutil.copy(LOCAL_YAML, tmp_path / "p.yaml")
    shutil.copytree(LOCAL_YAML.parent / "prompts", tmp_path / "prompts")
    config = load_config(tmp_path / "p.yaml", [], **{"source.uri": "/data/images", "output.uri": "/out/a"})
    before = {n: p.fingerprint for n, p in pipeline_prints(config).items()}
    prompt = tmp_path / "prompts" / config.regions.captioner.prompt
    prompt.with_suffix(".txt").write_text(prompt.with_suffix(".txt").read_text() + " Be brief.")
    after = {n: p.fingerprint for n, p in pipeline_prints(config).items()}
    assert {n for n in before if before[n] != after[n]} == {"regions", "quality"}
    assert before == base  # the copied pipeline is the same pipeline


def test_config_hash_is_the_hash_of_the_fingerprints():
    config = load_config(LOCAL_YAML, [], **{"source.uri": "/data/images"})
    tuned = load_config(LOCAL_YAML, ["caption.captioners.0.engine_options.tensor_parallel_size=2"],
                        **{"source.uri": "/data/images"})
    assert config_hash(config) == config_hash(tuned) != config_hash(
        load_config(LOCAL_YAML, ["regions.captioner.max_tokens=7"], **{"source.uri": "/data/images"}))


def test_changed_settings_names_each_key_with_old_and_new_values():
    old = {"captioner": {"max_tokens": 24, "prompt_id": "a/v1"}, "view": "composite", "text_captions": ["text"]}
    new = {"captioner": {"max_tokens": 20, "prompt_id": "a/v1"}, "view": "crop", "text_captions": ["text", "sign"]}
    assert changed_settings(old, new) == [
        "captioner.max_tokens: 24 -> 20", 'text_captions: ["text"] -> ["text", "sign"]',
        'view: "composite" -> "crop"']
