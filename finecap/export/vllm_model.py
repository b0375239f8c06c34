"""FineViT-VL inside vLLM: the out-of-tree model class and multimodal processor of an exported folder.

vLLM imports this module only when a folder's `architectures` names
FineVitVLForConditionalGeneration (finecap.export.vllm_plugin registers it by its lazy
"module:class" string, so plain vLLM start-up never pays for it). The image path is the trainer's
own code, run as plain torch modules: `vision` is finecap.train.vit.FineViT (2D RoPE, native
resolution), `projector` is finecap.train.towers.Projector (2x2 merge + 2-layer MLP) and image
features are computed by VisionLanguageModel.image_tokens. Only the causal LM is vLLM's own (its
Llama, paged attention and KV cache), built from `text_config`. Weight names are the export's:
`vision.*`, `projector.*`, `language_model.*` (the LM's transformers names, which vLLM's Llama
loader maps onto its fused qkv / gate_up weights; a tied lm_head is not stored).

Preprocessing is FineVitVLProcessor.images (the trainer's patchify) with the folder's
`preprocessor_config.json`; a prompt carries one `<|image_pad|>` per image and the processor
below expands it to rows * cols / 4 pads, the number of LM tokens the image becomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn
from transformers import BatchFeature
from vllm.config import VllmConfig
from vllm.config.multimodal import MultiModalDummyOptions
from vllm.inputs import MultiModalDataDict
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal
from vllm.model_executor.models.utils import AutoWeightsLoader, init_vllm_registered_model, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
)
from vllm.sequence import IntermediateTensors

from finecap.export.hf_config import FineVitVLConfig
from finecap.export.processor import FineVitVLProcessor, ImageSettings
from finecap.train.patches import FACTOR, MAX_ASPECT, pack, patch_positions
from finecap.train.tokens import IMAGE_PAD, VISION_END, VISION_START
from finecap.train.towers import Projector, VisionLanguageModel
from finecap.train.vit import MERGE, FineViT

IMAGE_PLACEHOLDER = f"{VISION_START}{IMAGE_PAD}{VISION_END}"  # what a chat template puts per image


class FineVitVLProcessingInfo(BaseProcessingInfo):
    def get_hf_config(self) -> FineVitVLConfig:
        return self.ctx.get_hf_config(FineVitVLConfig)

    def image_settings(self) -> ImageSettings:
        """The folder's preprocessor_config.json, checked against the trainer's fixed choices."""
        data = dict(self.ctx.get_hf_image_processor_config())
        data.pop("processor_class", None)  # added by some transformers versions on load
        for key in ("image_mean", "image_std"):
            if key in data:
                data[key] = tuple(data[key])
        if not data:
            return ImageSettings(max_pixels=self.get_hf_config().max_pixels).check()
        return ImageSettings(**data).check()

    def get_hf_processor(self, **kwargs: object) -> FineVitVLProcessor:
        return FineVitVLProcessor(self.get_tokenizer(), self.image_settings())

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"image": None}

    def get_num_image_tokens(self, *, image_width: int, image_height: int) -> int:
        return self.get_hf_processor().num_image_tokens(image_width, image_height)

    def get_image_size_with_most_features(self) -> tuple[int, int]:
        """(width, height) on the 28-pixel grid with the most 2x2 windows within max_pixels (the
        dummy image vLLM profiles with); not always a square when max_pixels is not a square of 28s."""
        windows = self.image_settings().max_pixels // (FACTOR * FACTOR)
        best = (1, 1)
        for cols in range(1, windows + 1):
            rows = windows // cols
            if max(rows, cols) / min(rows, cols) <= MAX_ASPECT and rows * cols > best[0] * best[1]:
                best = (cols, rows)
        return best[0] * FACTOR, best[1] * FACTOR


class FineVitVLDummyInputsBuilder(BaseDummyInputsBuilder[FineVitVLProcessingInfo]):
    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return IMAGE_PLACEHOLDER * mm_counts.get("image", 0)

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int],
                          mm_options: MultiModalDummyOptions) -> MultiModalDataDict:
        width, height = self.info.get_image_size_with_most_features()
        return {"image": self._get_dummy_images(width=width, height=height, num_images=mm_counts.get("image", 0),
                                                overrides=mm_options.get("image"))}


class FineVitVLMultiModalProcessor(BaseMultiModalProcessor[FineVitVLProcessingInfo]):
    """Images -> pixel_values / image_grid_hw by the trainer's patchify; each pad -> rows * cols / 4 pads."""

    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        images = hf_data.get("images") or []
        if not isinstance(images, list):
            images = [images]
        return BatchFeature(self.info.get_hf_processor().images(images) if images else {})

    def _get_mm_fields_config(self, hf_inputs: BatchFeature,
                              hf_processor_mm_kwargs: Mapping[str, object]) -> Mapping[str, MultiModalFieldConfig]:
        grids = hf_inputs.get("image_grid_hw", torch.empty((0, 2), dtype=torch.long))
        return {"pixel_values": MultiModalFieldConfig.flat_from_sizes("image", grids.prod(-1)),
                "image_grid_hw": MultiModalFieldConfig.batched("image", keep_on_cpu=True)}

    def _get_prompt_updates(self, mm_items: MultiModalDataItems, hf_processor_mm_kwargs: Mapping[str, object],
                            out_mm_kwargs: MultiModalKwargsItems) -> Sequence[PromptUpdate]:
        pad = self.info.get_hf_config().image_token_id

        def replacement(item_idx: int) -> list[int]:
            grid = out_mm_kwargs["image"][item_idx]["image_grid_hw"].data
            return [pad] * (int(grid.prod()) // (MERGE * MERGE))

        return [PromptReplacement(modality="image", target=[pad], replacement=replacement)]


@MULTIMODAL_REGISTRY.register_processor(FineVitVLMultiModalProcessor, info=FineVitVLProcessingInfo,
                                        dummy_inputs=FineVitVLDummyInputsBuilder)
class FineVitVLForVllm(nn.Module, SupportsMultiModal):
    """vLLM's model for architecture FineVitVLForConditionalGeneration (see the module docstring)."""

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("image"):
            return IMAGE_PLACEHOLDER
        raise ValueError(f"FineViT-VL reads images only, not {modality}")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config: FineVitVLConfig = vllm_config.model_config.hf_config
        vit = config.vit()  # checks the fields that restate the towers, naming the key
        self.config = config
        self.configure_mm_token_handling(vocab_size=config.text_config.vocab_size,
                                         mm_token_ids=[config.image_token_id])
        with self._mark_tower_model(vllm_config, "image"):
            self.vision = FineViT(vit)
            self.projector = Projector(vit.width, config.projector_hidden_dim)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config, hf_config=config.text_config, prefix=maybe_prefix(prefix, "language_model"))
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        """One [rows * cols / 4, LM width] tensor per image, computed by the trainer's image path."""
        pixel_values, grids = kwargs.get("pixel_values"), kwargs.get("image_grid_hw")
        if pixel_values is None:
            return []
        if isinstance(pixel_values, (list, tuple)):
            pixel_values = torch.cat(list(pixel_values))
        if isinstance(grids, (list, tuple)):
            grids = torch.stack([torch.as_tensor(g).reshape(2) for g in grids])
        sizes = [(int(r), int(c)) for r, c in grids.reshape(-1, 2).tolist()]
        if sum(r * c for r, c in sizes) != pixel_values.shape[0]:
            raise ValueError(f"image_grid_hw covers {sum(r * c for r, c in sizes)} patches but pixel_values has "
                             f"{pixel_values.shape[0]}")
        weight = self.vision.patch_embed.weight
        images = [(p, patch_positions(r, c))
                  for p, (r, c) in zip(pixel_values.cpu().split([r * c for r, c in sizes]), sizes, strict=True)]
        packed = pack(images).to(weight.device)
        packed.pixels = packed.pixels.to(weight.dtype)
        trainer = VisionLanguageModel(self.vision, self.projector, None, self.config.image_token_id)
        tokens = trainer.image_tokens(packed)
        return tokens.split([r * c // (MERGE * MERGE) for r, c in sizes])

    def forward(self, input_ids: torch.Tensor | None, positions: torch.Tensor,
                intermediate_tensors: IntermediateTensors | None = None, inputs_embeds: torch.Tensor | None = None,
                **kwargs: object) -> torch.Tensor | IntermediateTensors:
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights)
