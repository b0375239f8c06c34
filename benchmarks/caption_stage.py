"""Caption stage inside the pipeline vs the bare vLLM engine, on the same prepared images.

Both run in one embedded Ray session, in the same kind of process: a Ray actor with the caption
stage's `num_cpus`, so Ray gives both the same OMP_NUM_THREADS (1 for the embedded default's 0.5
CPU) and the same runtime env. (An earlier version ran the bare engine in the benchmark's own
process, where torch took 2 threads on 2 shared cores and was slower than the 1-thread actor:
it reported the stage at 1.50x the engine.)
1. Engine alone: an actor builds the engine and times `generate` on all images in batches of the
   caption batch size, first batch included (the stage's first batch is cold too).
2. Pipeline: `run_build` (prepare + one caption actor) on the same images in the same session;
   the caption stage's busy time comes from the manifests (`stage_seconds.caption`).
Prints images/s and output tokens/s for both and their ratio (goal: stage >= 0.9x engine); tokens
count non-empty captions only (the random tiny model writes some empty ones, which the stage
rejects), images count every image the engine or stage generated for.
`--in-process` also times the engine in this process with torch's default threads.

    python benchmarks/caption_stage.py [--images 192] [--max-tokens 48]      # full
    python benchmarks/caption_stage.py --images 12 --max-tokens 16           # quick
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def prepared_images(folder: Path, config) -> tuple[list, float]:
    """The model copies the prepare stage makes, decoded (exactly what the engine sees), and the
    seconds that decoding took: the stage decodes them too, inside its busy time."""
    import pyarrow as pa
    from PIL import Image

    from finecap.stages.prepare import PrepareStage

    files = sorted(folder.rglob("*.png")) + sorted(folder.rglob("*.jpg"))
    table = pa.table({"key": [f.name for f in files], "shard": ["b"] * len(files),
                      "image_bytes": [f.read_bytes() for f in files]})
    blobs = PrepareStage(config)(table).column("model_image").to_pylist()
    started = time.perf_counter()
    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs]
    return images, time.perf_counter() - started


def time_engine(images, config) -> dict:
    """Build the first captioner's engine here and time `generate` on every batch."""
    import torch

    from finecap.engines.base import SamplingSpec
    from finecap.engines.vllm_offline import VllmEngine
    from finecap.prompts import load_prompt
    from finecap.stages.caption_hygiene import clean_caption

    captioner = config.caption.captioners[0]
    engine = VllmEngine(captioner.model, captioner.engine_options)
    prompt = load_prompt(config.prompts_path(), captioner.prompt).text
    spec = SamplingSpec(max_tokens=captioner.max_tokens, temperature=0.0)
    size = config.caption.resources.batch_size
    batches, tokens = [], 0
    for i in range(0, len(images), size):
        chunk = images[i : i + size]
        started = time.perf_counter()
        generations = engine.generate(chunk, [prompt] * len(chunk), spec)
        batches.append(time.perf_counter() - started)
        # Like the stage's output: tokens of the captions that are not empty once cleaned.
        tokens += sum(g.num_tokens for g in generations if clean_caption(g.text))
    seconds = sum(batches)
    return {"images": len(images), "seconds": seconds, "first_batch_seconds": batches[0],
            "images_per_s": len(images) / seconds, "tokens_per_s": tokens / seconds,
            "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def engine_in_actor(images, config) -> dict:
    """time_engine in a Ray actor placed like the caption stage's (same num_cpus, same session)."""
    import ray

    timer = ray.remote(num_cpus=config.caption.resources.num_cpus)(_EngineTimer).remote()
    try:
        return ray.get(timer.run.remote(images, config))
    finally:
        ray.kill(timer)


class _EngineTimer:
    def run(self, images, config) -> dict:
        return time_engine(images, config)


def pipeline(config) -> dict:
    """One build in the current Ray session; the caption stage's busy time from the manifests."""
    import pyarrow.parquet as pq

    from finecap.runtime.runner import run_build

    started = time.perf_counter()
    summary = run_build(config, resume=False)
    wall = time.perf_counter() - started
    out = Path(config.output.uri)
    manifests = [json.loads(p.read_text()) for p in (out / "_manifest").glob("*.json")]
    seconds = sum(m["stage_seconds"].get("caption", 0.0) for m in manifests)
    before = sum(n for m in manifests for reason, n in m["rejects_by_reason"].items()
                 if reason.split("/")[0] in ("read", "prepare", "filter"))
    rows = pq.read_table(out / "data", columns=["captions"]).to_pylist()
    tokens = sum(c["num_tokens"] for r in rows for c in r["captions"])
    images = summary.rows_in - before  # rows that reached the caption stage
    return {"images": images, "captioned": len(rows), "stage_seconds": seconds, "images_per_s": images / seconds,
            "tokens_per_s": tokens / seconds, "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--in-process", action="store_true", help="also time the engine in this process")
    args = parser.parse_args()
    from benchmarks.record import record
    from finecap.config import load_config
    from finecap.runtime.ray_session import ray_session
    from finecap.samples.source import write_sample_source

    overrides = ["caption.assign=all", "caption.captioners=[{name: a, model: 'tiny:vlm-a', "
                 f"max_tokens: {args.max_tokens}, engine_options: {{dtype: float32, max_model_len: 1024, "
                 "enforce_eager: true, max_num_seqs: 16}}]", "caption.hygiene.enabled=false",
                 "source.shard_size=16", "filter.enabled=false", "dedup.enabled=false",
                 *[f"{stage}.enabled=false" for stage in ("phrases", "detect", "ocr", "regions")]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_sample_source(Path(tmp) / "src", n_scenes=args.images, seed=11, include_photos=False)
        config = load_config(REPO / "pipelines/local.yaml", overrides,
                             **{"source.uri": str(folder), "output.uri": str(Path(tmp) / "out")})
        images, decode_seconds = prepared_images(folder, config)
        with ray_session(config):
            alone = engine_in_actor(images, config)
            staged = pipeline(config)
        figures = {"engine_alone": alone, "caption_stage": staged, "decode_model_images_seconds": decode_seconds}
        if args.in_process:
            figures["engine_in_process"] = time_engine(images, config)
    ratio = staged["images_per_s"] / alone["images_per_s"]
    # The part of the gap that is decoding model_image bytes (the bare engine is handed PIL images).
    decode_share = decode_seconds / max(staged["stage_seconds"] - alone["seconds"], 1e-9)
    figures |= {"ratio_images_per_s": ratio, "ratio_tokens_per_s": staged["tokens_per_s"] / alone["tokens_per_s"],
                "decode_share_of_gap": decode_share}
    print(json.dumps(figures, indent=2))
    print(f"caption stage / bare engine (both in a {config.caption.resources.num_cpus}-CPU Ray actor, "
          f"{alone['torch_threads']} torch thread(s)): {ratio:.2f}x images/s")
    record("caption_stage", figures, f"stage = {ratio:.2f}x bare engine (images/s), both in a Ray actor with "
           f"{alone['torch_threads']} torch thread(s); {staged['stage_seconds']:.2f} s busy vs {alone['seconds']:.2f} s, "
           f"of which decoding model_image {decode_seconds:.2f} s", ">= 0.9x")


if __name__ == "__main__":
    main()
