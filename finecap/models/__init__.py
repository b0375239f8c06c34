"""Tiny local models for the embedded default pipeline and the tests, and model revisions.

Importing this package is cheap: the builders (torch, transformers) load only when a
tiny model is built. Builders: `finecap.models.tiny_vlm.build_tiny_vlm` and
`finecap.models.tiny_gdino.build_tiny_grounding_dino`.
"""

from finecap.models.registry import TINY_MODELS, build_all_tiny, cache_dir, is_tiny_ref, resolve_model
from finecap.models.revision import model_revision

__all__ = ["TINY_MODELS", "build_all_tiny", "cache_dir", "is_tiny_ref", "model_revision", "resolve_model"]
