"""Benchmark-shaped files the protocol tests write: image folders, Karpathy JSON, long-text JSONL.

The images are finecap synthetic scenes (the held-out split of the trainer fixtures, whose
bytes are PNG) or single shapes drawn with the scene generator's own shape masks.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from finecap.samples.shapes import shape_mask
from finecap.samples.vocab import LIGHT_BACKGROUNDS, OBJECT_COLOURS
from finecap.train.shards import iter_all_rows


def write_heldout_images(heldout: Path, folder: Path, limit: int | None = None) -> list[dict]:
    """Each held-out row's PNG as FOLDER/<key>.png; returns [{"file", "short", "long"}] in row order."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for row in iter_all_rows(str(heldout), ("key", "image", "captions"), limit):
        texts = [c["text"] for c in row["captions"] if c.get("text")]
        name = f"{row['key']}.png"
        (folder / name).write_bytes(row["image"]["bytes"])
        out.append({"file": name, "short": min(texts, key=len), "long": max(texts, key=len)})
    return out


def write_karpathy(path: Path, images: list[dict], captions: tuple[str, ...], split: str = "test",
                   filepath: str | None = None) -> Path:
    """A Karpathy-split JSON naming each image with the chosen captions (keys of the image dicts)."""
    entries = []
    for i, image in enumerate(images):
        entry = {"filename": image["file"], "split": split, "imgid": i,
                 "sentences": [{"raw": image[c], "tokens": image[c].lower().split()} for c in captions]}
        if filepath is not None:
            entry["filepath"] = filepath
        entries.append(entry)
    path.write_text(json.dumps({"images": entries, "dataset": "synthetic"}))
    return path


def draw_shape(shape: str, colour: str, size: tuple[int, int] = (168, 126), background: str = "light grey",
               offset: tuple[int, int] = (0, 0)) -> Image.Image:
    """One large shape of a palette colour on a plain background, like a one-object synthetic scene."""
    canvas = Image.new("RGB", size, LIGHT_BACKGROUNDS[background])
    side = int(min(size) * 0.55)
    x = (size[0] - side) // 2 + offset[0]
    y = (size[1] - side) // 2 + offset[1]
    canvas.paste(OBJECT_COLOURS[colour], (x, y, x + side, y + side), shape_mask(shape, side))
    return canvas


def write_class_folder(root: Path, classes: dict[str, list[Image.Image]]) -> Path:
    """ImageNet-style: ROOT/<folder>/<n>.png per class (folder names sort in the given order)."""
    for index, (name, images) in enumerate(classes.items()):
        folder = root / f"n{index:08d}_{name.replace(' ', '_')}"
        folder.mkdir(parents=True, exist_ok=True)
        for n, image in enumerate(images):
            image.save(folder / f"{n:04d}.png")
    return root


def one_error_line(capsys) -> str:
    """The command's stderr, asserted to be exactly one `error: ...` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def last_json(capsys) -> dict:
    """The JSON object a `--json` command printed as its last line."""
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def finecap_retrieval(checkpoint: Path, heldout: Path, capsys) -> dict:
    """`eval retrieval` on the held-out shards (the finecap protocol), the reference the others must meet."""
    from finecap.cli import main

    assert main(["eval", "retrieval", "--checkpoint", str(checkpoint), "--data", str(heldout), "--json"]) == 0
    return last_json(capsys)
