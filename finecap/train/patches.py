"""Native-resolution images as patch sequences, packed into rows with a bounded token count.

Why pack: images keep their aspect ratio, so sequence lengths differ; padding every image to
the longest wastes compute on wide-and-tall mixes. Images are placed first-fit into rows of a
fixed length and the vision tower masks attention to each image's own tokens.

Patch order inside an image is 2x2-window order (the four patches of a window are adjacent),
so stage III merges each window into one LLM token with a plain reshape.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from finecap.train.vit import MERGE, PATCH_DIM, PATCH_SIZE

FACTOR = PATCH_SIZE * MERGE  # 28: image sides are multiples of this
MAX_ASPECT = 20.0


def fit_size(width: int, height: int, max_pixels: int, min_pixels: int = FACTOR * FACTOR) -> tuple[int, int]:
    """(width, height) keeping the aspect ratio, sides multiples of 28, area within [min, max] pixels."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ValueError(f"aspect ratio of {width}x{height} is over {MAX_ASPECT}")
    w = max(FACTOR, round(width / FACTOR) * FACTOR)
    h = max(FACTOR, round(height / FACTOR) * FACTOR)
    if w * h > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        w = max(FACTOR, math.floor(width / beta / FACTOR) * FACTOR)
        h = max(FACTOR, math.floor(height / beta / FACTOR) * FACTOR)
    elif w * h < min_pixels:
        beta = math.sqrt(min_pixels / (width * height))
        w = math.ceil(width * beta / FACTOR) * FACTOR
        h = math.ceil(height * beta / FACTOR) * FACTOR
    return w, h


def decode_image(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def patchify(image: Image.Image, max_pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize to the fitted size and cut into patches: ([N, 588] in [-1, 1], positions [N, 2] (row, col))."""
    w, h = fit_size(image.width, image.height, max_pixels)
    if (w, h) != image.size:
        image = image.resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(image, dtype=np.float32) / 127.5 - 1.0  # (h, w, 3)
    gh, gw = h // FACTOR, w // FACTOR
    # (gh, m, p, gw, m, p, c) -> windows row-major, then the 2x2 patches of each window, channels first.
    x = arr.reshape(gh, MERGE, PATCH_SIZE, gw, MERGE, PATCH_SIZE, 3).transpose(0, 3, 1, 4, 6, 2, 5)
    patches = torch.from_numpy(np.ascontiguousarray(x).reshape(-1, PATCH_DIM))
    return patches, patch_positions(gh * MERGE, gw * MERGE)


def patch_positions(rows: int, cols: int) -> torch.Tensor:
    """[rows * cols, 2] (row, col) of a patch grid in patchify's 2x2-window order.

    A function of the grid alone, so an exported model rebuilds positions from (rows, cols).
    """
    if rows < MERGE or cols < MERGE or rows % MERGE or cols % MERGE:
        raise ValueError(f"a patch grid of {rows}x{cols} is not made of whole {MERGE}x{MERGE} windows")
    wr, wc, r, c = np.meshgrid(np.arange(rows // MERGE), np.arange(cols // MERGE), np.arange(MERGE),
                               np.arange(MERGE), indexing="ij")
    positions = np.stack([(wr * MERGE + r).ravel(), (wc * MERGE + c).ravel()], axis=1)
    return torch.from_numpy(positions.astype(np.int64))


def grid_of(positions: torch.Tensor) -> tuple[int, int]:
    """(patch rows, patch cols) of one image's positions."""
    return int(positions[:, 0].max()) + 1, int(positions[:, 1].max()) + 1


@dataclass
class PackedImages:
    """A batch of images packed into rows; `token_index` maps back to images in order."""

    pixels: torch.Tensor  # [R, L, 588]
    positions: torch.Tensor  # [R, L, 2]
    segments: torch.Tensor  # [R, L] image index, -1 = padding
    token_index: torch.Tensor  # [T] flat index into R*L of each image's tokens, image after image
    seq_lens: torch.Tensor  # [B]

    @property
    def num_images(self) -> int:
        return int(self.seq_lens.numel())

    @property
    def num_tokens(self) -> int:
        return int(self.token_index.numel())

    def image_ids(self) -> torch.Tensor:
        """[T] the image each unpacked token belongs to."""
        return torch.repeat_interleave(torch.arange(self.num_images, device=self.seq_lens.device), self.seq_lens)

    def unpack(self, features: torch.Tensor) -> torch.Tensor:
        """[R, L, D] -> [T, D], the tokens of image 0, then image 1, ..."""
        return features.reshape(-1, features.shape[-1])[self.token_index]

    def scatter(self, values: torch.Tensor, fill: bool | float = False) -> torch.Tensor:
        """[T] per unpacked token -> [R, L] in packed layout."""
        out = torch.full((self.segments.numel(),), fill, dtype=values.dtype, device=values.device)
        out[self.token_index] = values
        return out.view_as(self.segments)

    def mean_pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """[T, D] -> [B, D] mean over each image's tokens."""
        ids = self.image_ids()
        sums = torch.zeros(self.num_images, tokens.shape[-1], dtype=tokens.dtype, device=tokens.device)
        sums.index_add_(0, ids, tokens)
        return sums / self.seq_lens.to(tokens.dtype).unsqueeze(1)

    def to(self, device: torch.device | str) -> PackedImages:
        return PackedImages(*(t.to(device) for t in (self.pixels, self.positions, self.segments,
                                                      self.token_index, self.seq_lens)))


def pack(images: list[tuple[torch.Tensor, torch.Tensor]], row_length: int | None = None) -> PackedImages:
    """Pack (patches, positions) pairs first-fit-decreasing into rows of `row_length` tokens.

    `row_length` defaults to the longest sequence (then each row holds one long image or
    several short ones).
    """
    if not images:
        raise ValueError("cannot pack an empty batch")
    lengths = [p.shape[0] for p, _ in images]
    length = row_length or max(lengths)
    if max(lengths) > length:
        raise ValueError(f"an image has {max(lengths)} patches, more than the row length {length}")
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(images)), key=lambda j: -lengths[j]):
        slot = next((r for r, f in enumerate(free) if f >= lengths[i]), None)
        if slot is None:
            rows.append([])
            free.append(length)
            slot = len(rows) - 1
        rows[slot].append(i)
        free[slot] -= lengths[i]
    pixels = torch.zeros(len(rows), length, PATCH_DIM)
    positions = torch.zeros(len(rows), length, 2, dtype=torch.long)
    segments = torch.full((len(rows), length), -1, dtype=torch.long)
    starts = [0] * len(images)
    for r, members in enumerate(rows):
        offset = 0
        for i in members:
            n = lengths[i]
            pixels[r, offset : offset + n] = images[i][0]
            positions[r, offset : offset + n] = images[i][1]
            segments[r, offset : offset + n] = i
            starts[i] = r * length + offset
            offset += n
    token_index = torch.cat([torch.arange(s, s + n) for s, n in zip(starts, lengths, strict=True)])
    return PackedImages(pixels, positions, segments, token_index, torch.tensor(lengths))
