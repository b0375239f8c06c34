"""The bundled offline sample source: an image folder plus its exact ground truth.

`make build-dataset` builds from this folder, so it must appear without any download and be
byte-identical for the same arguments (the build's shard keys and hashes depend on it).

Layout::

    OUT/images/scene-00000.png ...   procedural scenes (finecap.samples.scenes)
    OUT/images/photo-<name>.jpg      scikit-image's bundled photos (finecap.samples.photos)
    OUT/ground_truth.jsonl           one object per image, sorted by file_name
    OUT/truth.coco.json              the scenes' truth in COCO format (finecap.samples.truth_coco)

`file_name` is relative to OUT (the Hugging Face imagefolder convention), which is also the
key an image-folder build of OUT gives the image.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import fsspec
import numpy as np

from finecap.quality.truth import TRUTH_FILE, write_truth
from finecap.samples.photos import PHOTOS, load_photo
from finecap.samples.scenes import generate_scene, sample_size
from finecap.samples.truth_coco import scenes_coco, truth_image

GROUND_TRUTH = "ground_truth.jsonl"
IMAGES = "images"
JPEG_QUALITY = 95


def scene_file_name(index: int) -> str:
    return f"{IMAGES}/scene-{index:05d}.png"


def photo_file_name(name: str) -> str:
    return f"{IMAGES}/photo-{name}.jpg"


def scene_record(index: int, seed: int = 0, base_size: tuple[int, int] = (640, 480)) -> tuple[bytes, dict]:
    """PNG bytes and ground truth of scene `index` of `seed`.

    Each scene has its own generator seeded with (seed, index), so scene 7 is the same whether
    3 or 3000 scenes are written.
    """
    rng = np.random.default_rng([seed, index])
    width, height = sample_size(rng, base_size)
    scene = generate_scene(rng, width, height)
    buffer = io.BytesIO()
    scene.image.save(buffer, format="PNG")
    record = {
        "file_name": scene_file_name(index),
        "kind": "scene",
        "seed": [seed, index],
        **scene.to_record(),
    }
    return buffer.getvalue(), record


def photo_record(name: str) -> tuple[bytes, dict]:
    """JPEG bytes and description of a bundled photo; it has no box-level ground truth (null)."""
    image = load_photo(name)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    info = PHOTOS[name]
    record = {
        "file_name": photo_file_name(name),
        "kind": "photo",
        "width": image.width,
        "height": image.height,
        "caption": info.caption,
        "credit": info.credit,
        "background": None,
        "objects": None,
        "words": None,
    }
    return buffer.getvalue(), record


def write_sample_source(
    out_dir: str | os.PathLike,
    n_scenes: int = 24,
    seed: int = 0,
    include_photos: bool = True,
    base_size: tuple[int, int] = (640, 480),
) -> Path:
    """Write the sample folder (local path) and return it.

    Rewrites in place: images of an earlier, larger run that this one does not produce are
    removed, so the folder always holds exactly what the arguments describe.
    """
    if n_scenes < 0:
        raise ValueError(f"n_scenes must be >= 0, got {n_scenes}")
    out = Path(out_dir)
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    records = []
    items = [(scene_record, (i, seed, base_size)) for i in range(n_scenes)]
    if include_photos:
        items += [(photo_record, (name,)) for name in PHOTOS]
    for make, args in items:
        data, record = make(*args)
        _write_atomic(out / record["file_name"], data)
        records.append(record)
    written = {r["file_name"] for r in records}
    for stale in [*(out / IMAGES).glob("scene-*.png"), *(out / IMAGES).glob("photo-*.jpg")]:
        if f"{IMAGES}/{stale.name}" not in written:
            stale.unlink()
    records.sort(key=lambda r: r["file_name"])
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    _write_atomic(out / GROUND_TRUTH, "".join(lines).encode("utf-8"))
    write_truth(str(out / TRUTH_FILE), source_truth(records, seed))
    return out


def source_truth(records: list[dict], seed: int) -> dict:
    """The COCO truth of a sample folder's records: scenes only.

    The bundled photos have no box-level truth (their records hold null objects and words), so
    they are left out rather than listed as images with no objects, which would score every
    detection on them as a false positive. `file_name` and `key` are the record's file_name,
    the key an image-folder build of the folder gives the row.
    """
    scenes = [r for r in records if r["kind"] == "scene"]
    images = [truth_image(index + 1, r, file_name=r["file_name"], key=r["file_name"], captions=[r["caption"]])
              for index, r in enumerate(scenes)]
    info = {"description": "FineCap sample source: procedural scenes (the bundled photos have no box truth)",
            "seed": seed}
    return scenes_coco(images, info)


def load_ground_truth(source_dir: str | os.PathLike) -> dict[str, dict]:
    """`ground_truth.jsonl` of a sample folder (any fsspec URI) as {file_name: record}."""
    with fsspec.open(f"{str(source_dir).rstrip('/')}/{GROUND_TRUTH}", "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return {r["file_name"]: r for r in records}


def _write_atomic(path: Path, data: bytes) -> None:
    """Readers (or a killed run) never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
