"""FineVitVLProcessor: images and prompts -> the exported model's inputs, as the trainer made them.

Images go through finecap.train.patches.patchify (the same resize, normalisation and
2x2-window patch order as training) and prompts through finecap.train.stage3.prompt_ids (the
same `<|vision_start|>`, one `<|image_pad|>` per merged window, `<|vision_end|>`, prompt, newline).
Settings come from the folder's `preprocessor_config.json`; the fields that restate the
trainer's fixed choices (patch 14, merge 2, [-1, 1] scaling, bicubic) are checked, so a loader
that reimplements preprocessing (vLLM's) can read them and trust them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoTokenizer, BatchFeature

from finecap.export.hf_config import ExportConfigError
from finecap.train.patches import FACTOR, fit_size, grid_of, patchify
from finecap.train.stage3 import pad_sequences, prompt_ids
from finecap.train.tokens import IMAGE_PAD, VISION_END, VISION_START
from finecap.train.vit import MERGE, PATCH_SIZE

PREPROCESSOR_FILE = "preprocessor_config.json"


@dataclass(frozen=True)
class ImageSettings:
    """`preprocessor_config.json`: how an image becomes patches (pixel = x / 127.5 - 1 after resize)."""

    max_pixels: int
    min_pixels: int = FACTOR * FACTOR
    patch_size: int = PATCH_SIZE
    merge_size: int = MERGE
    resample: str = "bicubic"
    rescale_factor: float = 1 / 255
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def check(self) -> ImageSettings:
        fixed = ImageSettings(max_pixels=self.max_pixels)  # the trainer's choices, which patchify hard-codes
        for key, value in asdict(fixed).items():
            if key != "max_pixels" and getattr(self, key) != value:
                raise ExportConfigError(f"{PREPROCESSOR_FILE}: {key} is {getattr(self, key)!r}; "
                                        f"the trainer's patchify uses {value!r}")
        if self.max_pixels < self.min_pixels:
            raise ExportConfigError(f"{PREPROCESSOR_FILE}: max_pixels {self.max_pixels} is under min_pixels "
                                    f"{self.min_pixels}")
        return self

    def save(self, folder: Path) -> Path:
        path = Path(folder) / PREPROCESSOR_FILE
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> ImageSettings:
        path = Path(folder) / PREPROCESSOR_FILE
        if not path.exists():
            raise ExportConfigError(f"{path}: missing")
        data = json.loads(path.read_text())
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ExportConfigError(f"{PREPROCESSOR_FILE}: unknown key {unknown[0]!r}")
        for key in ("image_mean", "image_std"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data).check()


class FineVitVLProcessor:
    """One image per prompt; prompts are left-padded so a batch's answers start together."""

    def __init__(self, tokenizer, settings: ImageSettings) -> None:
        self.tokenizer, self.settings = tokenizer, settings.check()

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> FineVitVLProcessor:
        return cls(AutoTokenizer.from_pretrained(folder), ImageSettings.load(Path(folder)))

    def save_pretrained(self, folder: str | Path) -> None:
        self.tokenizer.save_pretrained(folder)
        self.settings.save(Path(folder))

    def num_image_tokens(self, width: int, height: int) -> int:
        """`<|image_pad|>` tokens an image of this size takes (one per 2x2 window after fitting)."""
        w, h = fit_size(width, height, self.settings.max_pixels)
        return (w // FACTOR) * (h // FACTOR)

    def images(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """pixel_values [sum of patches, 588] and image_grid_hw [images, 2] (patch rows, cols)."""
        patches, grids = [], []
        for image in images:
            pixels, positions = patchify(image.convert("RGB"), self.settings.max_pixels)
            patches.append(pixels)
            grids.append(list(grid_of(positions)))
        return {"pixel_values": torch.cat(patches), "image_grid_hw": torch.tensor(grids, dtype=torch.long)}

    def prompt_text(self, prompt: str) -> str:
        """The prompt as text with one `<|image_pad|>` (a vLLM prompt; the engine expands the pad)."""
        return f"{VISION_START}{IMAGE_PAD}{VISION_END}{prompt}\n"

    def __call__(self, images: list[Image.Image], prompts: list[str]) -> BatchFeature:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts: give one image per prompt")
        pixels = self.images(images)
        tokens = [int(rows * cols) // (MERGE * MERGE) for rows, cols in pixels["image_grid_hw"].tolist()]
        ids = [prompt_ids(self.tokenizer, n, prompt) for n, prompt in zip(tokens, prompts, strict=True)]
        return BatchFeature({**pad_sequences(ids, None, self.tokenizer.pad_token_id, left=True), **pixels})

    def batch_decode(self, ids: torch.Tensor, **kwargs) -> list[str]:
        return self.tokenizer.batch_decode(ids, **kwargs)
