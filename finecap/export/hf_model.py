"""FineVitVLForConditionalGeneration: a stage III FineViT-VL as a transformers model.

It holds the trainer's own modules, not copies: `vision` is finecap.train.vit.FineViT (2D RoPE,
native resolution, packed rows), `projector` is finecap.train.towers.Projector (the 2x2 merge
and the 2-layer MLP) and `language_model` is the causal LM built from `text_config`. The
image-to-LM-token path and the writing of image features over `<|image_pad|>` run through
finecap.train.towers.VisionLanguageModel itself, so the exported model computes what the
trainer computed. Weight names are the attribute names: `vision.*`, `projector.*`,
`language_model.*` (finecap.export.export says how a checkpoint maps onto them).

Inputs, Qwen2-VL style so a vLLM multimodal processor can pass them through unchanged:
  pixel_values   [sum of patches, 588]  every image's patches, image after image, in patchify's
                                        2x2-window order, values in [-1, 1]
  image_grid_hw  [images, 2]            each image's (patch rows, patch cols); positions follow
                                        from the grid (finecap.train.patches.patch_positions)
  input_ids      each image contributes rows * cols / 4 `<|image_pad|>` tokens, in image order
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel

from finecap.export.hf_config import FineVitVLConfig
from finecap.train.patches import PackedImages, pack, patch_positions
from finecap.train.towers import Projector, VisionLanguageModel
from finecap.train.vit import FineViT, Rope2D


class FineVitVLForConditionalGeneration(PreTrainedModel, GenerationMixin):
    config_class = FineVitVLConfig
    config: FineVitVLConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    _supports_sdpa = True  # the LM's attention; FineViT always uses torch's scaled_dot_product_attention
    _no_split_modules = ["Block"]

    def __init__(self, config: FineVitVLConfig) -> None:
        super().__init__(config)
        vit = config.vit()
        self.vision = FineViT(vit)
        self.projector = Projector(vit.width, config.projector_hidden_dim)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self._no_split_modules = ["Block", *(self.language_model._no_split_modules or [])]
        self.post_init()

    def _trainer_view(self) -> VisionLanguageModel:
        """The trainer's model over these same modules, built per call and never registered (so
        the weights keep one name each); building it costs microseconds."""
        return VisionLanguageModel(self.vision, self.projector, self.language_model, self.config.image_token_id)

    def _init_weights(self, module: torch.nn.Module) -> None:
        """transformers re-creates non-persistent buffers empty on load and fills them here: the
        2D RoPE frequencies are recomputed by a fresh Rope2D (the trainer's formula)."""
        if isinstance(module, Rope2D):
            vit = self.config.vit()
            with torch.no_grad():
                fresh = Rope2D(vit.width // vit.heads, vit.rope_theta).to(module.inv_freq.device)
                module.inv_freq.copy_(fresh.inv_freq)
            return
        super()._init_weights(module)

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: torch.nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.language_model.get_output_embeddings()

    def packed_images(self, pixel_values: torch.Tensor, image_grid_hw: torch.Tensor) -> PackedImages:
        """Flat patches and grids -> the trainer's packed rows (what its vision tower reads)."""
        grids = [(int(rows), int(cols)) for rows, cols in image_grid_hw.tolist()]
        sizes = [rows * cols for rows, cols in grids]
        if sum(sizes) != pixel_values.shape[0]:
            raise ValueError(f"image_grid_hw covers {sum(sizes)} patches but pixel_values has {pixel_values.shape[0]}")
        images = [(patches, patch_positions(rows, cols))
                  for patches, (rows, cols) in zip(pixel_values.cpu().split(sizes), grids, strict=True)]
        packed = pack(images).to(self.vision.patch_embed.weight.device)
        packed.pixels = packed.pixels.to(self.vision.patch_embed.weight.dtype)  # pack() builds fp32 rows
        return packed

    def get_image_features(self, pixel_values: torch.Tensor, image_grid_hw: torch.Tensor) -> torch.Tensor:
        """[sum(rows * cols / 4), LM width]: the LM-space tokens of every image, image after image."""
        return self._trainer_view().image_tokens(self.packed_images(pixel_values, image_grid_hw))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_hw: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ):
        """The LM's output (CausalLMOutputWithPast); images only on the step that holds their tokens.

        generate() drops `pixel_values` after the prefill (transformers'
        MULTIMODAL_INPUTS_TO_DROP_OUTSIDE_PREFILL), so later steps embed text tokens only.
        """
        if inputs_embeds is None:
            if pixel_values is not None:
                if image_grid_hw is None:
                    raise ValueError("pixel_values need image_grid_hw (each image's patch rows and cols)")
                inputs_embeds = self._trainer_view().embed_with(
                    self.get_image_features(pixel_values, image_grid_hw), input_ids)
            else:
                inputs_embeds = self.get_input_embeddings()(input_ids)
        return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                   position_ids=position_ids, past_key_values=past_key_values, labels=labels,
                                   use_cache=use_cache, logits_to_keep=logits_to_keep, **kwargs)
