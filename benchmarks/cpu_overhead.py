"""Non-model CPU time per image through the pipeline vs the bare floor (decode, resize, encode).

Why: every image pays the CPU stages (read, prepare, filter, write, commit) and Ray's plumbing
before and after the models; on GPU nodes that CPU time decides how many cores feed a GPU.

Method, all in one run on the same images:
- floor: a plain loop that decodes each file, converts to RGB, bounds it to
  `prepare.model_max_side` (bicubic thumbnail) and encodes it as the prepare stage does (JPEG
  quality 90 or PNG level 1); best of `--floor-repeats` passes, `time.process_time`.
- prepare alone: the PrepareStage callable in this process on the same bytes (what prepare
  does beyond the floor: pixel sha256, perceptual hash, quality scores).
- pipeline: `run_build` with every model stage disabled (caption, phrases, detect, ocr,
  regions; dedup off), so all CPU time measured is non-model. Embedded Ray is started first and
  a small warm-up build runs before the measured one, so Ray's start and the workers' imports are
  not charged to the images. During the measured build a sampler (benchmarks/proctree.py) reads
  the CPU time of every process of the tree: driver, Ray workers, Ray daemons.
Ratio = pipeline CPU per image (driver + workers + daemons) / floor CPU per image; goal <= 1.2x.

    python benchmarks/cpu_overhead.py [--images 240] [--shard-size 8]      # full
    python benchmarks/cpu_overhead.py --images 32 --floor-repeats 2          # quick
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
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

MODEL_STAGES = ("caption", "phrases", "detect", "ocr", "regions")
# The encodings of prepare's model copy (finecap/image_ops.py: model_copy).
FLOOR_SAVE = {"jpeg": {"format": "JPEG", "quality": 90}, "png": {"format": "PNG", "compress_level": 1}}


def overrides(shard_size: int) -> list[str]:
    return [f"source.shard_size={shard_size}", "dedup.enabled=false",
            *[f"{stage}.enabled=false" for stage in MODEL_STAGES]]


def image_bytes(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((folder / "images").iterdir())]


def floor_cpu(blobs: list[bytes], config, repeats: int) -> float:
    """CPU seconds of the bare decode + resize + encode loop (best pass). Written out rather than
    calling prepare's `model_copy`, so the floor carries none of FineCap's own costs."""
    from PIL import Image

    side = config.prepare.model_max_side
    save = FLOOR_SAVE[config.prepare.model_image_format]
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for data in blobs:
            image = Image.open(io.BytesIO(data)).convert("RGB")
            image.thumbnail((side, side), Image.Resampling.BICUBIC)
            image.save(io.BytesIO(), **save)
        best = min(best, time.process_time() - started)
    return best


def prepare_cpu(blobs: list[bytes], config, repeats: int) -> float:
    """CPU seconds of the PrepareStage callable alone on the same bytes (best pass, after a warm-up)."""
    import pyarrow as pa

    from finecap.stages.prepare import PrepareStage

    stage = PrepareStage(config)
    table = pa.table({"key": [str(i) for i in range(len(blobs))], "shard": ["s"] * len(blobs),
                      "image_bytes": blobs})
    stage(table.slice(0, 2))  # first-call imports (scipy.fft) are not per-image work
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        stage(table)
        best = min(best, time.process_time() - started)
    return best


def pipeline_cpu(source: Path, warmup: Path, out: Path, shard_size: int) -> dict:
    """CPU seconds per process role during one warm build with the model stages off."""
    from benchmarks.proctree import TreeSampler
    from finecap.config import load_config
    from finecap.runtime.ray_session import ray_session
    from finecap.runtime.runner import run_build

    def config(src: Path, dest: Path):
        return load_config(REPO / "pipelines/local.yaml", overrides(shard_size),
                           **{"source.uri": str(src), "output.uri": str(dest)})

    measured = config(source, out)
    with ray_session(measured):
        run_build(config(warmup, out.with_name("warmup-out")), resume=False)
        started = time.perf_counter()
        with TreeSampler() as sampler:
            summary = run_build(measured, resume=False)
        wall = time.perf_counter() - started
    cpu = sampler.cpu_by_role()
    return {"rows": summary.rows_in, "rows_written": summary.rows_written, "wall_seconds": round(wall, 2),
            "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
            "stage_busy_seconds": {k: round(v, 3) for k, v in summary.stage_seconds.items()},
            "processes": [{"role": p.role, "title": p.title[:60], "cpu_s": round(p.cpu, 3), "born": p.born,
                           "peak_rss_mib": round(p.peak_rss / 2**20)} for p in sampler.procs.values()],
            "samples": sampler.samples,
            "sampler_cpu_seconds": round(sampler.sampler_cpu, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240, help="generated scenes (plus the 5 bundled photos)")
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--floor-repeats", type=int, default=3)
    parser.add_argument("--tag", default="", help="suffix of the result name, e.g. _before")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    from finecap.config import load_config
    from finecap.samples.source import write_sample_source

    config = load_config(REPO / "pipelines/local.yaml", overrides(args.shard_size))
    with tempfile.TemporaryDirectory(prefix="fc-cpu-") as tmp:
        source = write_sample_source(Path(tmp) / "src", n_scenes=args.images, seed=3)
        warmup = write_sample_source(Path(tmp) / "warm", n_scenes=args.shard_size * 2, seed=4,
                                     include_photos=False)
        blobs = image_bytes(source)
        floor = floor_cpu(blobs, config, args.floor_repeats)
        prepare = prepare_cpu(blobs, config, args.floor_repeats)
        run = pipeline_cpu(source, warmup, Path(tmp) / "out", args.shard_size)
    n = len(blobs)
    cpu = run["cpu_seconds"]
    total = sum(cpu.values())
    per_image_ms = {
        "floor": 1000 * floor / n,
        "prepare_stage_alone": 1000 * prepare / n,
        "pipeline_total": 1000 * total / n,
        **{f"pipeline_{role}": 1000 * seconds / n for role, seconds in cpu.items()},
    }
    ratio = total / floor
    figures = {"images": n, "per_image_cpu_ms": {k: round(v, 2) for k, v in per_image_ms.items()},
               "ratio_pipeline_to_floor": round(ratio, 3),
               "ratio_workers_and_driver_to_floor": round((total - cpu["ray_daemon"]) / floor, 3),
               "ratio_prepare_alone_to_floor": round(prepare / floor, 3),
               "ratio_pipeline_to_prepare_alone": round(total / prepare, 3), "pipeline": run}
    print(json.dumps(figures, indent=2))
    print(f"non-model CPU per image: pipeline {per_image_ms['pipeline_total']:.1f} ms, "
          f"floor {per_image_ms['floor']:.1f} ms: {ratio:.2f}x")
    if not args.no_record:
        from benchmarks.record import record

        record(f"cpu_overhead{args.tag}", figures,
               f"pipeline {per_image_ms['pipeline_total']:.1f} ms CPU/image = {ratio:.2f}x the decode+resize+encode "
               f"floor ({per_image_ms['floor']:.1f} ms); prepare stage alone {prepare / floor:.2f}x, so Ray plumbing "
               f"{total / prepare:.2f}x prepare", "<= 1.2x floor")


if __name__ == "__main__":
    main()
