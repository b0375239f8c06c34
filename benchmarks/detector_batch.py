"""Grounding DINO images/s at one (image, prompt) pair per forward vs several pairs per forward.

Why: the detector bills GPU hours per image, and a forward of one pair leaves an accelerator
mostly idle. The same images go through one engine at every `detect.inference_batch_size`, and
the boxes of every size are checked against batch 1. The images are scenes at the sizes prepared
web images mostly have (prepare bounds the long side to 768: 4:3, 3:4, 3:2 and 16:9 photos),
each prompted with its shapes and words and a few phrases it lacks. A forward only holds images
of one size (engines/detector.py `forwards`), so the mix of sizes bounds what batching can win.
Batch sizes run in turns, each end of the list first in turn, so a busy machine slows them alike.
On CPU, images/s per core = images / CPU seconds of this process (torch runs `--threads`); on
CUDA, wall images/s.

    python benchmarks/detector_batch.py [--images 48] [--batches 1 2 4 8 16] [--model tiny:gdino]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = [(768, 576), (576, 768), (768, 512), (768, 432)]
EXTRA_PHRASES = ["a sign", "the background", "a person", "a wooden table"]


def corpus(n: int, seed: int) -> tuple[list, list[list[str]]]:
    """`n` scenes cycling through SIZES and the phrases each is prompted with."""
    import numpy as np

    from finecap.samples.scenes import generate_scene

    images, phrases = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        scene = generate_scene(rng, *SIZES[i % len(SIZES)])
        images.append(scene.image)
        phrases.append([f"{o.size} {o.colour} {o.shape}" for o in scene.objects]
                       + [f"the word {w.text}" for w in scene.words] + EXTRA_PHRASES)
    return images, phrases


def max_difference(a: list, b: list) -> float:
    """Largest box coordinate difference between two results; inf when their phrases differ."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if [c.phrase for c in x] != [c.phrase for c in y]:
            return float("inf")
        for c, d in zip(x, y, strict=True):
            worst = max(worst, *(abs(p - q) for p, q in zip(c.box, d.box, strict=True)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=2, help="passes over the images per batch size")
    parser.add_argument("--model", default="tiny:gdino")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    import torch

    from benchmarks.record import record
    from finecap.config import DetectConfig
    from finecap.engines.detector import GroundingDinoEngine, forwards

    torch.set_num_threads(args.threads)
    cfg = DetectConfig()
    images, phrases = corpus(args.images, args.seed)
    engine = GroundingDinoEngine(args.model, args.device, cfg.dtype, 1, cfg.max_text_tokens)
    engine.detect(images[:2], phrases[:2], cfg.box_threshold, cfg.text_threshold)  # warm-up
    sizes = [images[i].size for i, p in enumerate(phrases) for _ in engine.prompts(p)]
    cpu = dict.fromkeys(args.batches, 0.0)
    wall = dict.fromkeys(args.batches, 0.0)
    found = {}
    for n in range(args.repeats):
        for size in args.batches if n % 2 == 0 else args.batches[::-1]:  # each end first in turn
            engine.batch_size = size
            started_cpu, started = time.process_time(), time.perf_counter()
            found[size] = engine.detect(images, phrases, cfg.box_threshold, cfg.text_threshold)
            if args.device != "cpu":
                torch.cuda.synchronize()
            cpu[size] += time.process_time() - started_cpu
            wall[size] += time.perf_counter() - started
    passes = args.repeats * len(images)
    rows = {size: {"forwards": len(forwards(sizes, size)), "cpu_seconds": round(cpu[size], 2),
                   "wall_seconds": round(wall[size], 2), "images_per_cpu_second": round(passes / cpu[size], 3),
                   "images_per_wall_second": round(passes / wall[size], 3),
                   "max_box_difference_vs_batch_1": max_difference(found[args.batches[0]], found[size])}
            for size in args.batches}
    measure = "images_per_cpu_second" if args.device == "cpu" else "images_per_wall_second"
    base = rows[args.batches[0]][measure]
    best = max(args.batches, key=lambda s: rows[s][measure])
    figures = {"images": len(images), "pairs": len(sizes), "model": args.model, "device": args.device,
               "threads": args.threads, "repeats": args.repeats, "measure": measure,
               "load_average_1m": round(os.getloadavg()[0], 1), "batches": rows}
    print(json.dumps(figures, indent=2))
    worst = max(r["max_box_difference_vs_batch_1"] for r in rows.values())
    headline = (f"{args.model} on {args.device}: {base:.2f} {measure.replace('_', ' ')} at batch "
                f"{args.batches[0]}, best {rows[best][measure]:.2f} at batch {best} "
                f"({rows[best][measure] / base:.2f}x); "
                + ", ".join(f"{s}: {rows[s][measure] / base:.2f}x" for s in args.batches)
                + f"; boxes within {worst:.1e} of batch 1")
    print(headline)
    if not args.no_record:
        record("detector_batch", figures, headline, ">= 2x images/s at the best batch vs batch 1")


if __name__ == "__main__":
    main()
