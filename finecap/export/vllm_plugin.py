"""The `vllm.general_plugins` entry point: makes exported FineViT-VL folders loadable by vLLM.

vLLM calls `register()` in every process it starts (the engine, its workers, `vllm serve`)
before it reads a model's config.json, so this is where FineCap (a) registers the `finevit_vl`
config with transformers (importing finecap.export does that; vLLM reads config.json through
AutoConfig and trust_remote_code stays off) and (b) names the architecture in vLLM's model
registry by a lazy "module:class" string: the vLLM model module (and its multimodal processor
registration) is imported only when a folder asks for it. Calling it again changes nothing.
"""

from __future__ import annotations

ARCHITECTURE = "FineVitVLForConditionalGeneration"  # finecap.export.hf_config.ARCHITECTURE (not imported: see register)
MODEL_CLASS = "finecap.export.vllm_model:FineVitVLForVllm"


def register() -> None:
    from vllm import ModelRegistry

    import finecap.export  # noqa: F401  (registers finevit_vl with transformers' AutoConfig)

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, MODEL_CLASS)
