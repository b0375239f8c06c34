"""The synthetic benchmark datasets: valid finecap/v1 outputs whose ground truth matches the scenes."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from finecap.cli import main
from finecap.samples.synth_dataset import PROMPT_LONG, PROMPT_SHORT, SYNTH_MODEL, write_synth_dataset
from finecap.samples.vocab import OBJECT_COLOURS
from finecap.schema import load_schema, validate_table
from finecap.validate import validate_output


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    counts = write_synth_dataset(str(out), 30, seed=11, heldout_fraction=0.2, size=(200, 150), shard_size=10)
    return out, counts


def _rows(split_dir):
    return [r for p in sorted((split_dir / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_splits_shards_and_schema(synth):
    out, counts = synth
    assert counts == {"train": 24, "heldout": 6}
    assert len(list((out / "train" / "data").glob("part-*.parquet"))) == 3
    for split in ("train", "heldout"):
        report = validate_output(str(out / split))
        assert report.ok, report.problems
        table = pq.read_table(sorted((out / split / "data").glob("*.parquet"))[0])
        assert validate_table(table, load_schema().arrow) == []
    train_keys = {r["key"] for r in _rows(out / "train")}
    held_keys = {r["key"] for r in _rows(out / "heldout")}
    assert not train_keys & held_keys and len(train_keys) == 24


def test_rows_carry_exact_ground_truth(synth):
    out, _ = synth
    for row in _rows(out / "train"):
        image = Image.open(io.BytesIO(row["image"]["bytes"]))
        assert image.size == (row["width"], row["height"])
        assert [c["prompt_id"] for c in row["captions"]] == [PROMPT_SHORT, PROMPT_LONG]
        assert all(c["model"] == SYNTH_MODEL for c in row["captions"])
        detector = [r for r in row["regions"] if r["origin"] == "detector"]
        ocr = [r for r in row["regions"] if r["origin"] == "ocr"]
        assert detector and all(r["caption"] and r["caption_model"] == SYNTH_MODEL for r in detector)
        assert all(r["ocr_text"] for r in ocr)
        long_caption = row["captions"][1]["text"]
        for region in detector:  # every shape's caption appears in the scene caption
            assert region["caption"] in long_caption
        for region in ocr:
            assert f"'{region['ocr_text']}'" in long_caption
        pixels = np.asarray(image.convert("RGB"))
        for region in detector:  # the box holds pixels of the shape's exact palette colour
            x1, y1, x2, y2 = region["bbox"]
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
            crop = pixels[round(y1 * row["height"]) : round(y2 * row["height"]),
                          round(x1 * row["width"]) : round(x2 * row["width"])]
            rgb = OBJECT_COLOURS[region["phrase"].split()[0]]
            assert (crop == rgb).all(axis=-1).sum() > 0.2 * crop.shape[0] * crop.shape[1]


def test_same_seed_same_bytes_other_seed_other_scenes(tmp_path):
    a = write_synth_dataset(str(tmp_path / "a"), 4, seed=1, heldout_fraction=0.0, size=(128, 96))
    write_synth_dataset(str(tmp_path / "b"), 4, seed=1, heldout_fraction=0.0, size=(128, 96))
    write_synth_dataset(str(tmp_path / "c"), 4, seed=2, heldout_fraction=0.0, size=(128, 96))
    assert a == {"train": 4}
    rows = {k: _rows(tmp_path / k / "train") for k in "abc"}
    assert [r["sha256"] for r in rows["a"]] == [r["sha256"] for r in rows["b"]]
    assert [r["sha256"] for r in rows["a"]] != [r["sha256"] for r in rows["c"]]


def test_cli_writes_both_splits(tmp_path, capsys):
    assert main(["samples", "synth", str(tmp_path / "s"), "--n", "5", "--seed", "3", "--width", "128",
                 "--height", "96"]) == 0
    assert "heldout" in capsys.readouterr().out
    manifest = json.loads(next((tmp_path / "s" / "train" / "_manifest").glob("*.json")).read_text())
    assert manifest["rows_written"] == 4 and manifest["rows_rejected"] == 0


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="heldout_fraction"):
        write_synth_dataset(str(tmp_path), 10, heldout_fraction=1.0)
