"""What stages declare about themselves for fingerprints and provenance, in one shape.

A model is named by what the config says and by its revision (the hub commit or a hash of the
local files: finecap/models/revision.py), so a checkpoint replaced in place changes the
fingerprint. A captioner's semantic settings are the model, the prompt's id and text hash, and
sampling; its engine, endpoints, retries, parallelism and memory never count, so a laptop
config resumes on a cluster with another engine setup.
"""

from __future__ import annotations

from functools import cache

from finecap.config import CaptionerConfig, PipelineConfig
from finecap.prompts import load_prompt


@cache
def revision_of(model: str) -> str:
    """The revision of a configured model name (tiny:NAME, a local folder or a hub name)."""
    from finecap.models.registry import resolve_model
    from finecap.models.revision import model_revision

    return model_revision(resolve_model(model))


def captioner_semantic(captioner: CaptionerConfig, config: PipelineConfig) -> dict:
    prompt = load_prompt(config.prompts_path(), captioner.prompt)
    return {
        "name": captioner.name,
        "model": captioner.model,
        "revision": revision_of(captioner.model),
        "dtype": captioner.engine_options.dtype,
        "prompt_id": prompt.id,
        "prompt_sha256": prompt.sha256,
        "weight": captioner.weight,
        "max_tokens": captioner.max_tokens,
        "temperature": captioner.temperature,
        "top_p": captioner.top_p,
        "seed": captioner.engine_options.seed,
    }


def captioner_provenance(stage: str, captioner: CaptionerConfig) -> dict:
    return {"stage": stage, "name": captioner.name, "model": captioner.model,
            "revision": revision_of(captioner.model), "prompt_id": captioner.prompt}
