"""Build the engine a captioner config names. The one place stages get a VLM engine from."""

from __future__ import annotations

from finecap.config import CaptionerConfig
from finecap.engines.base import VisionLanguageEngine


def make_vlm_engine(captioner: CaptionerConfig, images_per_prompt: int = 1) -> VisionLanguageEngine:
    """`images_per_prompt`: the most images a request of this stage carries (the vLLM engine sizes
    its multimodal budget by it; an HTTP endpoint takes what its server allows, vLLM's default 999)."""
    if captioner.engine == "vllm":
        from finecap.engines.vllm_offline import VllmEngine

        return VllmEngine(captioner.model, captioner.engine_options, images_per_prompt)
    if captioner.engine == "openai":
        from finecap.engines.openai_http import OpenAIEngine

        return OpenAIEngine(captioner.model, captioner.openai)
    raise ValueError(f"unknown engine {captioner.engine!r}")
