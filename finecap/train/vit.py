"""The FineViT vision tower: a pre-norm ViT with patch 14, 2D RoPE and packed native-resolution input.

Images keep their aspect ratio (sides multiples of 28), so a batch holds sequences of different
lengths. They arrive packed into rows (`finecap.train.patches.PackedImages`): attention is masked
to each image's own tokens, and positions come from each patch's (row, col), not its place in the
row, so packing changes nothing about what a token sees.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PATCH_SIZE = 14
MERGE = 2  # 2x2 patches merge into one LLM token in stage III; hence sides are multiples of 28
PATCH_DIM = 3 * PATCH_SIZE * PATCH_SIZE


@dataclass(frozen=True)
class ViTConfig:
    width: int
    layers: int
    heads: int
    ffn: int  # hidden size of the SwiGLU feed-forward
    patch_size: int = PATCH_SIZE
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        head_dim, rest = divmod(self.width, self.heads)
        if rest or head_dim % 4:
            raise ValueError(f"width {self.width} / heads {self.heads} must give a head size divisible by 4")
        if self.patch_size != PATCH_SIZE:
            raise ValueError(f"patch_size must be {PATCH_SIZE} (the packing and the merge assume it)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# finevit-0.86b: the paper's encoder (28 layers, width 1536, 16 heads, FFN 4608 with SiLU gating).
PRESETS: dict[str, ViTConfig] = {
    "tiny": ViTConfig(width=96, layers=4, heads=4, ffn=256),
    "small": ViTConfig(width=384, layers=12, heads=6, ffn=1024),
    "finevit-0.86b": ViTConfig(width=1536, layers=28, heads=16, ffn=4608),
}


def vit_config(preset: str, **overrides: int | float) -> ViTConfig:
    """A preset, optionally with some fields replaced (e.g. a shallower `tiny` for a test)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown vision preset {preset!r}; known: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[preset], **overrides)


class Rope2D(nn.Module):
    """Rotary embedding over two axes: half of each head's pairs rotate with the row, half with the column."""

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        quarter = head_dim // 4
        inv_freq = 1.0 / (theta ** (torch.arange(quarter, dtype=torch.float32) / quarter))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions [..., 2] (row, col) -> cos, sin [..., head_dim / 2]."""
        pos = positions.to(self.inv_freq.dtype)
        angles = torch.cat([pos[..., :1] * self.inv_freq, pos[..., 1:] * self.inv_freq], dim=-1)
        return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [R, H, L, D]; cos/sin [R, L, D/2] rotate the pairs (x[:D/2], x[D/2:])."""
    cos, sin = cos.unsqueeze(1).to(x.dtype), sin.unsqueeze(1).to(x.dtype)
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        rows, length, width = x.shape
        q, k, v = self.qkv(x).view(rows, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(rows, length, width))


class SwiGLU(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(width, 2 * hidden)
        self.down = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg.width, cfg.ffn)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope, mask)
        return x + self.mlp(self.norm2(x))


class FineViT(nn.Module):
    """Patch tokens in, contextual patch features out (no class token: heads pool what they need)."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.patch_embed = nn.Linear(PATCH_DIM, cfg.width)
        self.mask_token = nn.Parameter(torch.zeros(cfg.width))
        self.rope = Rope2D(cfg.width // cfg.heads, cfg.rope_theta)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.apply(_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def width(self) -> int:
        return self.config.width

    def forward(
        self,
        pixels: torch.Tensor,
        positions: torch.Tensor,
        segments: torch.Tensor,
        token_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Packed rows in, features of the same layout out.

        pixels [R, L, 588] normalised patches; positions [R, L, 2] (row, col) in patches;
        segments [R, L] image index of each token (-1 for padding); token_mask [R, L] bool:
        tokens replaced by the learned mask token (masked image modelling).
        """
        x = self.patch_embed(pixels)
        if token_mask is not None:
            x = torch.where(token_mask.unsqueeze(-1), self.mask_token.to(x.dtype), x)
        rope = self.rope(positions)
        # Each token sees only its own image; padding (-1) sees padding, so no row is all-masked.
        mask = (segments.unsqueeze(2) == segments.unsqueeze(1)).unsqueeze(1)
        for block in self.blocks:
            x = block(x, rope, mask)
        return self.norm(x)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
