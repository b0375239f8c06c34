"""OCR images/s per core, before (rapidocr's own call, image by image) and after (`read_batch`).

Why: at FineCap-450M scale OCR is billed in CPU-core-hours, and most web images hold no text.
The corpus is half OCR scenes (1 to 3 rendered words each, finecap.samples.scenes) and half
photos without text (crops of the bundled photos, finecap.samples.photos). Three readers see the
same images in one run, turn about in chunks so a busy machine slows them alike:
- before: `RapidOCR(image)` per image, the engine's earlier path;
- after: `RapidOcrEngine.read_batch` per chunk, the stage's path at the default config;
- one reader per `--variant KEY=VALUE` of the ocr section, e.g. `probe_side=256` (a small
  detector look first; off by default) or `limit_side_len=480` (a smaller detector input).
Images/s per core = images / CPU seconds of this process (onnxruntime runs one thread), which
other processes on the machine do not inflate; wall seconds are printed beside it. Word recall
is measured on the OCR scenes (exact text at IoU >= 0.5, finecap.samples.matching) for each.
The photos are not quite text-free: the motorcycle photo has small YAMAHA labels (mirrored in
some crops), so the lines read on photos show what a probe loses on small real text.

    python benchmarks/ocr_throughput.py [--images 48] [--chunk 8] [--variant probe_side=256 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def corpus(n: int, seed: int) -> tuple[list, list]:
    """`n` images, every other one an OCR scene; and per image its true words (None: a photo)."""
    import numpy as np
    from PIL import Image, ImageOps

    from finecap.samples.photos import load_photos
    from finecap.samples.scenes import sample_size
    from finecap.samples.source import scene_record

    photos = [image for _, image in load_photos()]
    images, words = [], []
    for i in range(n):
        if i % 2 == 0:
            data, record = scene_record(i // 2, seed=seed)
            images.append(Image.open(io.BytesIO(data)).convert("RGB"))
            words.append([(w["text"], w["bbox_px"]) for w in record["words"]])
            continue
        rng = np.random.default_rng([seed, i])
        photo = photos[(i // 2) % len(photos)]
        scale = rng.uniform(0.6, 1.0)
        w, h = round(photo.width * scale), round(photo.height * scale)
        x, y = int(rng.integers(0, photo.width - w + 1)), int(rng.integers(0, photo.height - h + 1))
        crop = photo.crop((x, y, x + w, y + h)).resize(sample_size(rng), Image.Resampling.BICUBIC)
        images.append(ImageOps.mirror(crop) if rng.random() < 0.5 else crop)
        words.append(None)
    return images, words


def rapidocr_reader(cfg):
    """The earlier engine: rapidocr's call per image, its lines kept as the engine kept them."""
    from rapidocr_onnxruntime import RapidOCR

    from finecap.engines.ocr import rapidocr_lines

    ocr = RapidOCR(text_score=cfg.min_score, max_side_len=cfg.max_side, det_box_thresh=cfg.box_threshold,
                   det_limit_side_len=cfg.limit_side_len, det_limit_type="min",
                   intra_op_num_threads=cfg.threads, inter_op_num_threads=1)

    return lambda images: [rapidocr_lines(ocr, image) for image in images]


def recall(read: list, words: list) -> tuple[int, int]:
    from finecap.samples.matching import match_words

    matched = total = 0
    for lines, truth in zip(read, words, strict=True):
        if truth is None:
            continue
        found = match_words(truth, [(line.quad, line.text) for line in lines])
        matched += sum(m.ok for m in found)
        total += len(found)
    return matched, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="corpus size, half of it OCR scenes")
    parser.add_argument("--chunk", type=int, default=8, help="images per read_batch call (the stage's batch)")
    parser.add_argument("--variant", action="append", metavar="KEY=VALUE",
                        help="an ocr setting for one more reader (repeatable; default: probe_side 256, 384, "
                             "512 and limit_side_len=480)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    from benchmarks.record import record
    from finecap.config import OcrConfig, parse_override
    from finecap.stages.ocr import make_ocr_engine

    cfg = OcrConfig()
    images, words = corpus(args.images, args.seed)
    readers = {"before": rapidocr_reader(cfg), "after": make_ocr_engine(cfg).read_batch}
    variants = args.variant or ["probe_side=256", "probe_side=384", "probe_side=512", "limit_side_len=480"]
    for variant in variants:
        key, value = parse_override(variant)
        readers[variant] = make_ocr_engine(dataclasses.replace(cfg, **{key: value})).read_batch
    cpu = dict.fromkeys(readers, 0.0)
    wall = dict.fromkeys(readers, 0.0)
    read: dict[str, list] = {name: [] for name in readers}
    names = list(readers)
    for n, start in enumerate(range(0, len(images), args.chunk)):
        chunk = images[start : start + args.chunk]
        for name in names[n % len(names):] + names[: n % len(names)]:  # each goes first in turn
            started_cpu, started = time.process_time(), time.perf_counter()
            read[name] += readers[name](chunk)
            cpu[name] += time.process_time() - started_cpu
            wall[name] += time.perf_counter() - started
    texts = {name: [[(line.text, line.quad) for line in lines] for lines in read[name]] for name in readers}
    figures = {
        "images": len(images), "ocr_scenes": sum(w is not None for w in words), "chunk": args.chunk,
        "threads": cfg.threads, "load_average_1m": round(os.getloadavg()[0], 1),
        "readers": {name: {"cpu_seconds": round(cpu[name], 2), "wall_seconds": round(wall[name], 2),
                           "images_per_cpu_second": round(len(images) / cpu[name], 3),
                           "word_recall": "{}/{}".format(*recall(read[name], words)),
                           "lines": sum(len(lines) for lines in read[name]),
                           "photo_lines": [line.text for lines, w in zip(read[name], words, strict=True)
                                           if w is None for line in lines],
                           "images_differing_from_before": sum(
                               a != b for a, b in zip(texts[name], texts["before"], strict=True))}
                    for name in readers},
    }
    print(json.dumps(figures, indent=2))
    r = figures["readers"]
    speed = {name: r[name]["images_per_cpu_second"] / r["before"]["images_per_cpu_second"] for name in readers}
    others = "".join(f", {v} {speed[v]:.2f}x (recall {r[v]['word_recall']}, "
                     f"{len(r[v]['photo_lines'])}/{len(r['before']['photo_lines'])} photo lines)" for v in variants)
    headline = (f"{len(images)} images, half photos without scene text: images/s per core before "
                f"{r['before']['images_per_cpu_second']:.2f}, after {r['after']['images_per_cpu_second']:.2f} "
                f"({speed['after']:.2f}x, same lines, word recall {r['after']['word_recall']} as before){others}")
    print(headline)
    if not args.no_record:
        record("ocr_throughput", figures, headline, ">= 2x images/s per core at equal word recall")


if __name__ == "__main__":
    main()
