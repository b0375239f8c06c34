"""Synthetic benchmark datasets: generated scenes written as finecap shards with exact ground truth.

Why: the trainer must show that it learns on a CPU without any pretrained model, and that needs
data whose every caption and box is true. `write_synth_dataset` draws scenes with
`finecap.samples.scenes` and writes `OUT/train` and `OUT/heldout`, each a normal finecap output
(data, empty rejects, manifests) that `finecap validate` accepts and the trainer streams, plus
`truth.coco.json`: the split's truth in COCO format, which `finecap eval dataset --truth` reads.
Each row has two global captions (a short one naming the shapes and words, and the scene's full
caption with background, sizes and positions), one detector region per shape and one OCR region
per word.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from finecap import __version__, storage
from finecap.image_ops import perceptual_hash, pixel_sha256, quality_scores
from finecap.quality.truth import TRUTH_FILE, TruthImage, write_truth
from finecap.samples.captions import count_phrase, join_and, with_article
from finecap.samples.scenes import Scene, generate_scene, sample_size
from finecap.samples.truth_coco import scenes_coco, truth_image
from finecap.schema import conform, load_schema

SYNTH_MODEL = "synthetic-ground-truth"
SYNTH_REVISION = "scenes-v1"
PROMPT_SHORT, PROMPT_LONG = "synthetic/short@v1", "synthetic/long@v1"
MIN_SIDE = 96  # the scene generator's floor


def short_caption(scene: Scene) -> str:
    """Counts, colours and shapes, then the words: 'Two shapes: a red square and a green triangle. Words: dance.'"""
    shapes = [with_article(f"{o.colour} {o.shape}") for o in scene.objects]
    first = f"{count_phrase(len(shapes), 'shape').capitalize()}: {join_and(shapes)}." if shapes else "No shapes."
    words = [w.text for w in scene.words]
    return f"{first} Words: {', '.join(words)}." if words else first


def _caption(text: str, prompt_id: str) -> dict:
    return {"text": text, "model": SYNTH_MODEL, "model_revision": SYNTH_REVISION, "prompt_id": prompt_id,
            "num_tokens": len(text.split())}


def _regions(scene: Scene) -> list[dict]:
    regions = [
        {"bbox": list(o.bbox), "phrase": f"{o.colour} {o.shape}", "category": o.shape, "score": 1.0,
         "origin": "detector", "caption": o.caption, "caption_model": SYNTH_MODEL, "ocr_text": None}
        for o in scene.objects
    ]
    regions += [
        {"bbox": list(w.bbox), "phrase": "word", "category": "text", "score": 1.0, "origin": "ocr",
         "caption": w.caption, "caption_model": SYNTH_MODEL, "ocr_text": w.text}
        for w in scene.words
    ]
    return regions


def scene_row(key: str, scene: Scene, shard: str, config_hash: str) -> dict:
    """One finecap row (a plain dict) of a generated scene."""
    buffer = io.BytesIO()
    scene.image.save(buffer, format="PNG", compress_level=1)
    return {
        "key": key,
        "url": f"synth://{key}",
        "source": "finecap-synth",
        "alt_text": None,
        "image": {"bytes": buffer.getvalue(), "path": f"{key}.png"},
        "width": scene.width,
        "height": scene.height,
        "sha256": pixel_sha256(scene.image),
        "phash": perceptual_hash(scene.image),
        "captions": [_caption(short_caption(scene), PROMPT_SHORT), _caption(scene.caption, PROMPT_LONG)],
        "regions": _regions(scene),
        "quality": quality_scores(scene.image).as_dict(),
        "provenance": {"finecap_version": __version__, "schema_version": load_schema().version,
                       "config_hash": config_hash, "shard": shard},
    }


def _scene(seed: int, index: int, base: tuple[int, int]) -> Scene:
    rng = np.random.default_rng([seed, index])
    width, height = sample_size(rng, base)
    return generate_scene(rng, max(MIN_SIDE, width), max(MIN_SIDE, height))


def row_truth(image_id: int, row: dict, scene: Scene) -> TruthImage:
    """The truth of a scene row: keyed by the row key, named by its image path, its two captions."""
    return truth_image(image_id, scene.to_record(), file_name=row["image"]["path"], key=row["key"],
                       captions=[c["text"] for c in row["captions"]])


def _write_split(out: str, indices: range, seed: int, base: tuple[int, int], shard_size: int,
                 row_group_size: int, config_hash: str) -> int:
    """Write the split's shards, then its truth file (after the rows, so it never names a missing one)."""
    truth: list[TruthImage] = []
    for shard_no, start in enumerate(range(indices.start, indices.stop, shard_size)):
        shard = f"part-{shard_no:06d}"
        rows = []
        for i in range(start, min(start + shard_size, indices.stop)):
            scene = _scene(seed, i, base)
            rows.append(scene_row(f"synth-{seed}-{i:06d}", scene, shard, config_hash))
            truth.append(row_truth(i + 1, rows[-1], scene))  # ids from the scene index: unique across splits
        _write_shard(out, shard, rows, row_group_size, config_hash)
    info = {"description": "FineCap synthetic scenes", "generator": SYNTH_REVISION, "seed": seed,
            "scenes": [indices.start, indices.stop]}
    write_truth(storage.join(out, TRUTH_FILE), scenes_coco(truth, info))
    return len(indices)


def _write_shard(out: str, shard: str, rows: list[dict], row_group_size: int, config_hash: str) -> None:
    schema = load_schema().arrow
    table = conform(pa.Table.from_pylist(rows, schema=schema), schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_size, compression="zstd")
    storage.write_bytes(storage.join(out, "data", f"{shard}.parquet"), buffer.getvalue())
    buffer = io.BytesIO()
    pq.write_table(load_schema().rejects_arrow.empty_table(), buffer)
    storage.write_bytes(storage.join(out, "rejects", f"{shard}.parquet"), buffer.getvalue())
    manifest = {
        "shard": shard, "rows_in": len(rows), "rows_written": len(rows), "rows_rejected": 0,
        "rejects_by_reason": {},
        "files": {"data": f"data/{shard}.parquet", "rejects": f"rejects/{shard}.parquet"},
        "stage_seconds": {}, "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config_hash": config_hash, "schema_version": load_schema().version, "finecap_version": __version__,
        "models": [{"stage": "synth", "name": SYNTH_MODEL, "revision": SYNTH_REVISION}],
    }
    storage.write_bytes(storage.join(out, "_manifest", f"{shard}.json"), json.dumps(manifest, indent=2).encode())


def write_synth_dataset(
    out_uri: str,
    n: int,
    seed: int = 0,
    heldout_fraction: float = 0.1,
    *,
    size: tuple[int, int] = (320, 240),
    shard_size: int = 256,
    row_group_size: int = 64,
) -> dict[str, int]:
    """Write `n` scenes: the last round(n * heldout_fraction) (at least one) to OUT/heldout, the rest to OUT/train.

    Scene i depends only on (seed, i), so a dataset is reproducible from its arguments.
    Returns the row counts per split.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    n_heldout = max(1, round(n * heldout_fraction)) if heldout_fraction > 0 and n > 1 else 0
    facts = json.dumps({"generator": SYNTH_REVISION, "n": n, "seed": seed, "heldout": heldout_fraction,
                        "size": list(size)}, sort_keys=True)
    config_hash = "sha256:" + hashlib.sha256(facts.encode()).hexdigest()[:16]
    counts = {"train": range(0, n - n_heldout), "heldout": range(n - n_heldout, n)}
    return {
        split: _write_split(storage.join(out_uri, split), indices, seed, size, shard_size, row_group_size, config_hash)
        for split, indices in counts.items()
        if len(indices)
    }


def _synth_command(args: argparse.Namespace) -> int:
    counts = write_synth_dataset(args.output, args.n, args.seed, args.heldout_fraction,
                                 size=(args.width, args.height), shard_size=args.shard_size)
    for split, rows in counts.items():
        print(f"{storage.join(args.output, split)}: {rows} rows")
    return 0


def register_synth(samples_subparsers) -> None:
    """Add `finecap samples synth OUTPUT_URI [--n N] [--seed S]`."""
    synth = samples_subparsers.add_parser(
        "synth", help="write synthetic scenes with exact ground truth as finecap train and heldout datasets")
    synth.add_argument("output", help="output URI; writes OUTPUT/train and OUTPUT/heldout")
    synth.add_argument("--n", type=int, default=1000, help="number of scenes (both splits)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--heldout-fraction", type=float, default=0.1)
    synth.add_argument("--width", type=int, default=320, help="base width; each scene varies it by up to 15%%")
    synth.add_argument("--height", type=int, default=240, help="base height")
    synth.add_argument("--shard-size", type=int, default=256, help="rows per shard")
    synth.set_defaults(func=_synth_command)
