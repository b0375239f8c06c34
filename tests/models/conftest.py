"""Tiny models built once per test session (each build takes under a second)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from finecap.models.tiny_gdino import build_tiny_grounding_dino
from finecap.models.tiny_vlm import build_tiny_vlm


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"), seed=0)


@pytest.fixture(scope="session")
def tiny_gdino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_grounding_dino(tmp_path_factory.mktemp("tiny-gdino"), seed=0)


def _scene(size: tuple[int, int] = (160, 120), shade: int = 0) -> Image.Image:
    w, h = size
    image = Image.new("RGB", size, (40 + shade, 120, 200 - shade))
    draw = ImageDraw.Draw(image)
    draw.rectangle([w // 8, h // 6, w // 2, h // 2], fill=(230, 200, 20))
    draw.ellipse([w // 2, h // 2, w - 5, h - 5], fill=(200, 30, 30))
    return image


def _same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


@pytest.fixture
def scene() -> Callable[..., Image.Image]:
    """Factory of small synthetic scenes: background, a rectangle and a disc."""
    return _scene


@pytest.fixture
def same_files() -> Callable[[Path, Path], bool]:
    """Whether two directories hold the same file names with byte-identical contents."""
    return _same_files
