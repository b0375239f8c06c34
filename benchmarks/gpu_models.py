"""The models benchmarks/gpu_rates.py times, built from transformers config classes with random
weights (no download), and the arithmetic of their cost.

Why random weights: speed depends on shapes, not values, and a GPU node often cannot reach the
hub. Why these imports only (torch, transformers, yaml, finecap.train.vit / losses / config /
siglip_text): a GPU node may have CUDA PyTorch and transformers but not Ray, vLLM, polars or
pyarrow; finecap.train.stage2 and towers pull in the data loader (pyarrow) and PIL, so the stage
II step is assembled here from the same parts (the vision tower, SigLIP's text model, the loss).

- Grounding DINO base: the shape of IDEA-Research/grounding-dino-base (Swin-B 384 backbone,
  window 12, depths 2-2-18-2; BERT-base text encoder; 6 + 6 deformable layers, 900 queries).
- The stage II step: FineViT (`model.vision.preset`), the configured text tower's shape
  (TEXT_SHAPES), projections into `stage2.embed_dim`, SigLIP's sigmoid loss, AdamW, bf16 autocast.
  One difference: the image embedding is a mean pool + projection, not stage2's attention pool
  (its key and value projections are 2 x width^2 multiply-adds per token, ~0.5% of the step).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from finecap.train.losses import siglip_loss
from finecap.train.siglip_text import extend_positions
from finecap.train.vit import PATCH_DIM, PATCH_SIZE, FineViT, vit_config

SWIN_B = {"model_type": "swin", "image_size": 384, "patch_size": 4, "embed_dim": 128, "depths": [2, 2, 18, 2],
          "num_heads": [4, 8, 16, 32], "window_size": 12, "out_features": ["stage2", "stage3", "stage4"]}
GDINO_BASE = {"backbone_config": SWIN_B, "text_config": {"model_type": "bert"}}  # BERT's defaults: bert-base
GDINO_QUICK = {
    "backbone_config": {**SWIN_B, "embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": 7},
    "text_config": {"model_type": "bert", "vocab_size": 2048, "hidden_size": 32, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "intermediate_size": 64},
    "d_model": 32, "num_queries": 50, "encoder_layers": 1, "decoder_layers": 2, "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
}
# bert-base-uncased ids Grounding DINO looks for ([CLS], [SEP], "."): a prompt is phrases closed by ".".
CLS, SEP, DOT = 101, 102, 1012
FIRST_WORD_ID = 1100


def grounding_dino(quick: bool) -> nn.Module:
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection

    shape = GDINO_QUICK if quick else GDINO_BASE
    config = GroundingDinoConfig(use_pretrained_backbone=False, use_timm_backbone=False, **shape)
    return GroundingDinoForObjectDetection(config).eval()


def detector_inputs(model: nn.Module, batch: int, height: int, width: int, tokens: int, dtype: torch.dtype,
                    device: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """What the engine's processor hands the model: pixels, a pixel mask, and one prompt per image
    of `tokens` ids shaped like phrases of three words, each closed by "."."""
    ids = torch.randint(FIRST_WORD_ID, model.config.text_config.vocab_size, (batch, tokens), generator=gen)
    ids[:, 4::4] = DOT
    ids[:, 0], ids[:, -2], ids[:, -1] = CLS, DOT, SEP
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
              "pixel_values": torch.randn(batch, 3, height, width, generator=gen).to(dtype),
              "pixel_mask": torch.ones(batch, height, width, dtype=torch.long)}
    return {k: v.to(device) for k, v in inputs.items()}


# Text towers by `model.text.model`: the text half of the checkpoint's config (SiglipTextConfig).
SIGLIP2_SO400M_TEXT = {"vocab_size": 256000, "hidden_size": 1152, "intermediate_size": 4304,
                       "num_hidden_layers": 27, "num_attention_heads": 16, "max_position_embeddings": 64,
                       "projection_size": 1152, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}
TEXT_SHAPES = {"google/siglip2-so400m-patch14-384": SIGLIP2_SO400M_TEXT,
               "google/siglip2-so400m-patch16-384": SIGLIP2_SO400M_TEXT}
QUICK_TEXT = {"vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "max_position_embeddings": 8, "projection_size": 32,
              "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}


@dataclass(frozen=True)
class StepShape:
    """Everything the stage II step's speed depends on, from a training config (or the quick shapes)."""

    vision: str  # preset
    text_model: str
    text: dict
    embed_dim: int
    resolution: int  # square images: (resolution / 14)^2 patch tokens
    text_length: int
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    grad_clip: float | None

    @property
    def image_tokens(self) -> int:
        return (self.resolution // PATCH_SIZE) ** 2


QUICK_STEP = StepShape("tiny", "quick", QUICK_TEXT, 16, 56, 8, 1e-4, (0.9, 0.95), 0.1, 1.0)


def step_shape(config_path: Path, phase: int) -> StepShape:
    """Stage II's shapes from a training YAML; errors name the key."""
    from finecap.train.config import load_train_config
    from finecap.typed_config import ConfigError

    config = load_train_config(config_path)
    stage, text = config.stage2, config.model.text.model
    if text not in TEXT_SHAPES:
        raise ConfigError(f"model.text.model: no built-in shape for {text!r} in benchmarks/gpu_models.py "
                          f"TEXT_SHAPES (known: {', '.join(TEXT_SHAPES)})")
    if not 0 <= phase < len(stage.phases):
        raise ConfigError(f"stage2.phases: --phase {phase} but the config has {len(stage.phases)} phase(s)")
    chosen, opt = stage.phases[phase], stage.optim
    return StepShape(config.model.vision.preset, text, TEXT_SHAPES[text], stage.embed_dim, chosen.resolution,
                     chosen.text_length, opt.lr, (opt.beta1, opt.beta2), opt.weight_decay, opt.grad_clip)


class StepModel(nn.Module):
    """FineViT and a SigLIP text model with projections into the shared space; forward gives the loss."""

    def __init__(self, shape: StepShape) -> None:
        from transformers import SiglipTextConfig, SiglipTextModel

        super().__init__()
        self.vision = FineViT(vit_config(shape.vision))
        self.text = SiglipTextModel(SiglipTextConfig(**shape.text))
        extend_positions(self.text, shape.text_length)  # stage2's fit_context: 64 -> 256 in the late phase
        self.image_proj = nn.Linear(self.vision.width, shape.embed_dim, bias=False)
        self.text_proj = nn.Linear(shape.text["projection_size"], shape.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor([math.log(10.0)]))
        self.logit_bias = nn.Parameter(torch.tensor([-10.0]))

    def forward(self, pixels, positions, segments, input_ids) -> torch.Tensor:
        image = self.vision(pixels, positions, segments).mean(dim=1)  # one image per row: its tokens
        text = self.text(input_ids=input_ids).pooler_output  # SigLIP: fixed-length text, no mask
        return siglip_loss(F.normalize(self.image_proj(image), dim=-1), F.normalize(self.text_proj(text), dim=-1),
                           self.logit_scale, self.logit_bias)


def step_inputs(shape: StepShape, batch: int, device: str, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """A micro-batch of square images, one per packed row (rows are the longest image when all are
    equal), and fixed-length captions."""
    side = shape.resolution // PATCH_SIZE
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    positions = torch.stack([rows.flatten(), cols.flatten()], dim=1).expand(batch, -1, -1)
    pixels = torch.rand(batch, side * side, PATCH_DIM, generator=gen) * 2 - 1
    segments = torch.zeros(batch, side * side, dtype=torch.long)
    ids = torch.randint(3, shape.text["vocab_size"], (batch, shape.text_length), generator=gen)
    return tuple(t.to(device) for t in (pixels, positions.contiguous(), segments, ids))


def linear_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


def step_flops(model: StepModel, shape: StepShape, batch: int) -> float:
    """Model FLOPs of one training sample (forward + backward = 3 x forward; no recomputation).

    Forward: 2 FLOPs per multiply-add of every Linear weight for each token it sees, plus attention
    4 x T^2 x width per layer (QK^T and AV) for a sequence of T tokens; embedding lookups, norms and
    activations are not counted (PaLM's MFU convention). Image tokens T = (resolution / 14)^2, text
    tokens S = text length; the text head and the projections see one vector per sample, the loss
    2 x batch x embed_dim (one row of the batch's logits)."""
    t, s = shape.image_tokens, shape.text_length
    vision = 2 * linear_weights(model.vision) * t + 4 * model.vision.config.layers * t * t * model.vision.width
    text_cfg = model.text.config
    text = (2 * linear_weights(model.text.encoder) * s
            + 4 * text_cfg.num_hidden_layers * s * s * text_cfg.hidden_size + 2 * linear_weights(model.text.head))
    heads = 2 * (linear_weights(model.image_proj) + linear_weights(model.text_proj)) + 2 * batch * shape.embed_dim
    return 3.0 * (vision + text + heads)


# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from NVIDIA's data sheets; first match wins.
PEAK_TFLOPS = [
    (r"\bH200 NVL\b", 835.0), (r"\bH200\b", 989.4), (r"\bGH200\b", 989.4), (r"\bH100 NVL\b", 835.0),
    (r"\bH100 PCIe\b", 756.0), (r"\bH100\b", 989.4), (r"\bH800\b", 989.4), (r"\bB200\b", 2250.0),
    (r"\bA100\b", 312.0), (r"\bA800\b", 312.0), (r"\bL40S\b", 362.1), (r"\bL4\b", 121.0), (r"\bA10\b", 125.0),
]


def peak_tflops(device_name: str) -> float | None:
    for pattern, peak in PEAK_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return peak
    return None
