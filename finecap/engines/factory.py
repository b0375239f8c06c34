"""Build the engine a captioner config names. The one place stages get a VLM engine from."""

from __future__ import annotations

from finecap.config import CaptionerConfig
from finecap.engines.base import VisionLanguageEngine


def make_vlm_engine(captioner: CaptionerConfig) -> VisionLanguageEngine:
    if captioner.engine == "vllm":
        from finecap.engines.vllm_offline import VllmEngine

        return VllmEngine(captioner.model, captioner.engine_options)
    if captioner.engine == "openai":
        from finecap.engines.openai_http import OpenAIEngine

        return OpenAIEngine(captioner.model, captioner.openai)
    raise ValueError(f"unknown engine {captioner.engine!r}")
