"""FineVitVLConfig: the `config.json` of an exported FineViT-VL folder, a transformers config.

One file says everything a loader needs without FineCap's trainer config: the FineViT tower
(`vision_config`, exactly the trainer's ViTConfig fields), the causal LM (`text_config`, the LM's
own transformers config), the projector's dimensions, the special token ids the prompt uses and
the image preprocessing (patch 14, 2x2 merge, pixel budget). A vLLM out-of-tree model reads the
same fields, so nothing here is transformers-only. Redundant fields (the projector dimensions,
patch and merge sizes) are checked against the towers at load: a folder edited by hand fails in
one line naming the key instead of loading a model that runs differently from how it was trained.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto import CONFIG_MAPPING

from finecap.train.patches import FACTOR
from finecap.train.vit import MERGE, PATCH_SIZE, ViTConfig

MODEL_TYPE = "finevit_vl"
ARCHITECTURE = "FineVitVLForConditionalGeneration"


class ExportConfigError(ValueError):
    """A config.json field that does not describe a model FineCap trained (names the key)."""


@strict
class FineVitVLConfig(PreTrainedConfig):
    model_type = MODEL_TYPE
    sub_configs = {"text_config": AutoConfig}
    # Composite: a default-constructed config describes no model, so transformers must not diff against one.
    has_no_defaults_at_init = True

    vision_config: dict | None = None  # finecap.train.vit.ViTConfig fields
    text_config: dict | PreTrainedConfig | None = None  # the causal LM's transformers config
    image_token_id: int | None = None  # <|image_pad|>: one per merged 2x2 patch window
    vision_start_token_id: int | None = None
    vision_end_token_id: int | None = None
    box_start_token_id: int | None = None
    box_end_token_id: int | None = None
    projector_input_dim: int | None = None  # merge^2 x vision width (a 2x2 window, concatenated)
    projector_hidden_dim: int | None = None  # fc1 output = fc2 input = output: the LM's width
    patch_size: int = PATCH_SIZE
    merge_size: int = MERGE
    max_pixels: int | None = None  # images are fitted into this many pixels (the stage III resolution^2)
    min_pixels: int = FACTOR * FACTOR
    task_prompts: dict | None = None  # stage III task -> prompt template (finecap.train.tasks.PROMPTS)
    source: dict | None = None  # provenance: checkpoint, step, finecap version
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if isinstance(self.text_config, dict):
            kind = self.text_config.get("model_type")
            if kind not in CONFIG_MAPPING:
                raise ExportConfigError(f"text_config.model_type: {kind!r} is not a transformers model type")
            self.text_config = CONFIG_MAPPING[kind](**self.text_config)
        if self.text_config is not None and self.text_config.tie_word_embeddings:
            self.tie_word_embeddings = True  # as Llava: loaders read the flag at the top level too
        super().__post_init__(**kwargs)

    def vit(self) -> ViTConfig:
        """The vision tower's config, checked against the fields that restate it."""
        if self.vision_config is None:
            raise ExportConfigError("vision_config: missing (a FineViT-VL folder states its vision tower)")
        try:
            vit = ViTConfig(**self.vision_config)
        except (TypeError, ValueError) as exc:
            raise ExportConfigError(f"vision_config: {exc}") from None
        expected = {"patch_size": vit.patch_size, "merge_size": MERGE, "min_pixels": FACTOR * FACTOR,
                    "projector_input_dim": MERGE * MERGE * vit.width}
        if self.text_config is None:
            raise ExportConfigError("text_config: missing (a FineViT-VL folder states its language model)")
        expected["projector_hidden_dim"] = self.text_config.hidden_size
        for key, value in expected.items():
            if getattr(self, key) != value:
                raise ExportConfigError(f"{key}: {getattr(self, key)} does not match the model ({value})")
        for key in ("image_token_id", "vision_start_token_id", "vision_end_token_id", "max_pixels"):
            if getattr(self, key) is None:
                raise ExportConfigError(f"{key}: missing")
        return vit
