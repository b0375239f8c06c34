"""The `vllm.general_plugins` entry point is installed and registers FineViT-VL lazily, once."""

from __future__ import annotations

from importlib.metadata import entry_points


def test_the_installed_entry_point_is_finecaps_register():
    from finecap.export import vllm_plugin

    found = [ep for ep in entry_points(group="vllm.general_plugins") if ep.value.startswith("finecap.")]
    assert [ep.value for ep in found] == ["finecap.export.vllm_plugin:register"]
    assert found[0].load() is vllm_plugin.register


def test_register_names_the_architecture_by_a_lazy_string_and_is_idempotent():
    from transformers import AutoConfig
    from vllm import ModelRegistry

    from finecap.export.hf_config import ARCHITECTURE, MODEL_TYPE, FineVitVLConfig
    from finecap.export.vllm_plugin import ARCHITECTURE as PLUGIN_ARCHITECTURE
    from finecap.export.vllm_plugin import register

    assert PLUGIN_ARCHITECTURE == ARCHITECTURE
    register()
    first = ModelRegistry.models[ARCHITECTURE]
    register()
    assert ModelRegistry.models[ARCHITECTURE] is first  # a second call re-registers nothing
    assert (first.module_name, first.class_name) == ("finecap.export.vllm_model", "FineVitVLForVllm")
    assert AutoConfig.for_model(MODEL_TYPE).__class__ is FineVitVLConfig  # vLLM reads config.json through AutoConfig
