"""Shared fixtures: one tiny-model cache per checkout, sample images, configs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
LOCAL_YAML = REPO / "pipelines" / "local.yaml"
# `--set` items that switch off the local-caption stages, for tests about global captions and runtime.
NO_LOCAL_CAPTIONS = [f"{stage}.enabled=false" for stage in ("phrases", "detect", "ocr", "regions")]

# Tiny models are deterministic: build them once per checkout, not once per test run.
os.environ.setdefault("FINECAP_CACHE", str(REPO / "build" / "test-cache"))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def png_bytes(size=(64, 48), colour=(200, 30, 30), mode="RGB", fmt="PNG") -> bytes:
    image = Image.new(mode, size, colour if mode == "RGB" else None)
    if mode == "RGB":
        ImageDraw.Draw(image).rectangle([4, 4, size[0] // 2, size[1] // 2], fill=(10, 200, 40))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Ten small distinct PNGs and one file that is not an image."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i in range(10):
        target = folder / ("sub" if i % 3 == 0 else "") / f"img{i:02d}.png"
        target.write_bytes(png_bytes((64 + 4 * i, 48), (20 * i, 100, 200 - 15 * i)))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    return folder


@pytest.fixture
def local_config(tmp_path: Path, image_folder: Path):
    """The embedded default pipeline pointed at a temp folder and output."""
    from finecap.config import load_config

    def make(*overrides: str, **direct):
        direct.setdefault("source.uri", str(image_folder))
        direct.setdefault("output.uri", str(tmp_path / "out"))
        return load_config(LOCAL_YAML, list(overrides), **direct)

    return make


@pytest.fixture(scope="session")
def vllm_engine():
    """One real vLLM engine (tiny VLM, in this process) shared by every test that needs one."""
    from finecap.config import EngineConfig
    from finecap.engines.vllm_offline import VllmEngine

    options = EngineConfig(dtype="float32", max_model_len=1024, max_num_seqs=16, enforce_eager=True)
    return VllmEngine("tiny:vlm-a", options)
