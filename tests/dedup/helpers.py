"""A committed output with planted duplicates, built without Ray (read -> prepare -> filter -> commit)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from finecap.config import load_config
from finecap.runtime.commit import ShardProgress, commit_shard
from finecap.runtime.runner import run_facts
from finecap.sources import make_source
from finecap.stages.filters import FilterStage
from finecap.stages.fingerprints import config_hash
from finecap.stages.prepare import PrepareStage
from finecap.stages.write import PieceWriter
from tests.conftest import LOCAL_YAML

# Loser -> the image it must name. Identical files and lossless re-encodes are exact duplicates;
# JPEG re-encodes, downscaled, cropped and watermarked copies are near duplicates. The winner is
# the bigger image, then the smaller key.
EXACT = {"orig-00.png": "copy-00.png", "orig-01.png": "bmp-01.bmp", "orig-02.png": "lossless-02.png"}
NEAR = {"orig-03.png": "jpeg-03.jpg", "small-04.png": "orig-04.png", "half-05.jpg": "orig-05.png",
        "small-06.jpg": "orig-06.png", "crop-07.png": "orig-07.png", "text-08.png": "orig-08.png"}
DISTINCT = 12


def pattern(seed: int, size=(320, 240)) -> Image.Image:
    grid = np.random.default_rng(1000 + seed).integers(30, 225, size=(9, 12, 3), dtype=np.uint8)
    return Image.fromarray(grid).resize(size, Image.Resampling.NEAREST)


def _save(path: Path, image: Image.Image, **kwargs) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format=kwargs.pop("format", None) or path.suffix.lstrip(".").replace("jpg", "jpeg").upper(),
               **kwargs)
    path.write_bytes(buffer.getvalue())


def write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(DISTINCT):
        _save(folder / f"orig-{i:02d}.png", pattern(i))
    (folder / "copy-00.png").write_bytes((folder / "orig-00.png").read_bytes())
    _save(folder / "bmp-01.bmp", pattern(1))
    _save(folder / "lossless-02.png", pattern(2), compress_level=9, format="PNG")
    _save(folder / "jpeg-03.jpg", pattern(3), quality=90)
    _save(folder / "small-04.png", pattern(4).resize((240, 180), Image.Resampling.BICUBIC))
    _save(folder / "half-05.jpg", pattern(5).resize((160, 120), Image.Resampling.BICUBIC), quality=70)
    _save(folder / "small-06.jpg", pattern(6).resize((288, 216), Image.Resampling.LANCZOS), quality=85)
    # Phash distance > 0: a 3% crop (smaller, so the original wins) and a watermark (same size:
    # the smaller key, the original, wins).
    _save(folder / "crop-07.png", pattern(7).crop((6, 5, 314, 235)).resize((300, 225), Image.Resampling.BICUBIC))
    marked = pattern(8)
    ImageDraw.Draw(marked).text((20, 20), "WATERMARK", fill=(255, 255, 255))
    _save(folder / "text-08.png", marked)


def build_output(tmp_path: Path, *overrides: str):
    """Write the corpus, commit every shard of it under tmp_path/out, return the config."""
    write_corpus(tmp_path / "images")
    config = load_config(LOCAL_YAML, ["source.shard_size=4", "filter.min_short_side=100", "caption.enabled=false",
                                      "phrases.enabled=false", "detect.enabled=false", "ocr.enabled=false",
                                      "regions.enabled=false", *overrides],
                         **{"source.uri": str(tmp_path / "images"), "output.uri": str(tmp_path / "out")})
    chash = config_hash(config)
    facts = run_facts(config)
    source = make_source(config)
    for spec in source.plan():
        rows = FilterStage(config)(PrepareStage(config)(source.read(spec)))
        progress = ShardProgress(spec.shard_id, spec.num_rows)
        for piece in PieceWriter(config, chash)(rows).to_pylist():
            progress.add(piece)
        commit_shard(config.output.uri, progress, facts, "zstd")
    return config
