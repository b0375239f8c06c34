"""Caption stage inside the pipeline vs the bare vLLM engine, on the same prepared images.

1. Engine alone: the tiny VLM in vLLM in this process, `generate` on all images in batches of
   the pipeline's caption batch size (after one warm-up batch).
2. Pipeline: `finecap build` (embedded Ray, prepare + one caption actor) on the same images; the
   caption stage's busy time comes from the manifests (`stage_seconds.caption`, summed per row).
Prints images/s and output tokens/s for both and their ratio (goal: stage >= 0.9x engine).

    python benchmarks/caption_stage.py [--images 48] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def prepared_images(folder: Path, config) -> list:
    """The model copies the prepare stage makes, decoded: exactly what the engine sees."""
    import pyarrow as pa
    from PIL import Image

    from finecap.stages.prepare import PrepareStage

    files = sorted(folder.rglob("*.png")) + sorted(folder.rglob("*.jpg"))
    table = pa.table({"key": [f.name for f in files], "shard": ["b"] * len(files),
                      "image_bytes": [f.read_bytes() for f in files]})
    out = PrepareStage(config)(table)
    return [Image.open(io.BytesIO(b)).convert("RGB") for b in out.column("model_image").to_pylist()]


def engine_alone(images, config) -> dict:
    from finecap.engines.base import SamplingSpec
    from finecap.engines.vllm_offline import VllmEngine
    from finecap.prompts import load_prompt

    captioner = config.caption.captioners[0]
    engine = VllmEngine(captioner.model, captioner.engine_options)
    prompt = load_prompt(config.prompts_path(), captioner.prompt).text
    spec = SamplingSpec(max_tokens=captioner.max_tokens, temperature=0.0)
    size = config.caption.resources.batch_size
    engine.generate(images[:size], [prompt] * len(images[:size]), spec)  # warm-up
    started, tokens = time.perf_counter(), 0
    for i in range(0, len(images), size):
        chunk = images[i : i + size]
        tokens += sum(g.num_tokens for g in engine.generate(chunk, [prompt] * len(chunk), spec))
    seconds = time.perf_counter() - started
    return {"images": len(images), "seconds": seconds, "images_per_s": len(images) / seconds,
            "tokens_per_s": tokens / seconds}


def pipeline(folder: Path, out: Path, overrides: list[str]) -> dict:
    cmd = [sys.executable, "-m", "finecap.cli", "build", "--config", str(REPO / "pipelines/local.yaml"),
           "--input", str(folder), "--output", str(out), "--no-resume"]
    for item in overrides:
        cmd += ["--set", item]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    import pyarrow.parquet as pq

    seconds = sum(json.loads(p.read_text())["stage_seconds"].get("caption", 0.0)
                  for p in (out / "_manifest").glob("*.json"))
    rows = pq.read_table(out / "data", columns=["captions"]).to_pylist()
    tokens = sum(c["num_tokens"] for r in rows for c in r["captions"])
    return {"images": len(rows), "stage_seconds": seconds, "images_per_s": len(rows) / seconds,
            "tokens_per_s": tokens / seconds, "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    from benchmarks.record import record
    from finecap.config import load_config
    from finecap.samples.source import write_sample_source

    overrides = ["caption.assign=all", "caption.captioners=[{name: a, model: 'tiny:vlm-a', "
                 f"max_tokens: {args.max_tokens}, engine_options: {{dtype: float32, max_model_len: 1024, "
                 "enforce_eager: true, max_num_seqs: 16}}]", "caption.hygiene.enabled=false",
                 "source.shard_size=16", "filter.enabled=false", "dedup.enabled=false",
                 *[f"{stage}.enabled=false" for stage in ("phrases", "detect", "ocr", "regions")]]
    config = load_config(REPO / "pipelines/local.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_sample_source(Path(tmp) / "src", n_scenes=args.images, seed=11, include_photos=False)
        alone = engine_alone(prepared_images(folder, config), config)
        staged = pipeline(folder, Path(tmp) / "out", overrides)
    ratio = staged["images_per_s"] / alone["images_per_s"]
    figures = {"engine_alone": alone, "caption_stage": staged, "ratio_images_per_s": ratio,
               "ratio_tokens_per_s": staged["tokens_per_s"] / alone["tokens_per_s"]}
    print(json.dumps(figures, indent=2))
    print(f"caption stage / bare engine: {ratio:.2f}x images/s")
    record("caption_stage", figures, f"stage = {ratio:.2f}x bare engine (images/s)", ">= 0.9x")


if __name__ == "__main__":
    main()
