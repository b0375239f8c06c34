"""The scenes' COCO truth: it parses back to the scenes' exact boxes, and the sample folder and the
synth splits carry it, matched to their rows."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from finecap.cli import main
from finecap.quality.truth import TRUTH_FILE, load_truth, parse_truth
from finecap.samples.source import load_ground_truth, write_sample_source
from finecap.samples.synth_dataset import write_synth_dataset
from finecap.samples.truth_coco import SYNONYMS, scenes_coco, shape_categories, truth_image
from finecap.samples.vocab import OBJECT_COLOURS, SHAPES


def test_categories_are_the_shape_vocabulary():
    categories = shape_categories()
    assert [c.name for c in categories] == list(SHAPES)
    assert [c.id for c in categories] == list(range(1, len(SHAPES) + 1))
    assert set(SYNONYMS) == set(SHAPES)  # a new shape must decide its synonyms
    by_name = {c.name: c for c in categories}
    assert "disc" in by_name["circle"].synonyms and "rhombus" in by_name["diamond"].synonyms
    names = [c.name for c in categories] + [s for c in categories for s in c.synonyms]
    assert len(names) == len(set(names))  # no synonym names two shapes


def test_scene_truth_parses_back_to_the_scene(scenes):
    images = [truth_image(i + 1, s.to_record(), file_name=f"s{i}.png", key=f"k{i}", captions=[s.caption, "x"])
              for i, s in enumerate(scenes[:6])]
    coco = json.loads(json.dumps(scenes_coco(images, {"seed": 1})))  # through JSON, as written
    truth = parse_truth(coco)
    assert coco["info"] == {"seed": 1} and truth.category_names() == sorted(SHAPES)
    for i, scene in enumerate(scenes[:6]):
        image = truth.match(f"k{i}")
        assert image is not None and image.id == i + 1 and image.file_name == f"s{i}.png"
        assert (image.width, image.height) == (scene.width, scene.height)
        assert image.captions == [scene.caption, "x"]
        assert [(o.category, o.bbox, o.attributes) for o in image.objects] == [
            (o.shape, tuple(float(v) for v in o.bbox_px), {"colour": o.colour, "size": o.size})
            for o in scene.objects]
        assert [(t.text, t.bbox, t.legible) for t in image.texts] == [
            (w.text, tuple(float(v) for v in w.bbox_px), True) for w in scene.words]


def test_an_empty_scene_list_is_a_valid_truth():
    truth = parse_truth(scenes_coco([]))
    assert truth.images == {} and len(truth.categories) == len(SHAPES)


def test_sample_folder_truth_lists_its_scenes_not_its_photos(tmp_path):
    folder = write_sample_source(tmp_path, n_scenes=3, seed=4)
    records = load_ground_truth(folder)
    truth = load_truth(str(folder / TRUTH_FILE))
    scene_names = sorted(n for n, r in records.items() if r["kind"] == "scene")
    assert len(scene_names) == 3 and len(records) > 3  # the photos are in the folder, not in the truth
    assert sorted(i.file_name for i in truth.images.values()) == scene_names
    for name in scene_names:
        image, record = truth.match(name), records[name]
        assert image is not None and image.key == name and image.captions == [record["caption"]]
        assert [o.bbox for o in image.objects] == [tuple(map(float, o["bbox_px"])) for o in record["objects"]]
        assert [t.text for t in image.texts] == [w["text"] for w in record["words"]]
        pixels = np.asarray(Image.open(folder / name).convert("RGB"))
        assert pixels.shape[:2] == (image.height, image.width)
        for obj in image.objects:  # each box holds the object's exact palette colour
            x1, y1, x2, y2 = (int(v) for v in obj.bbox)
            crop = pixels[y1:y2, x1:x2]
            share = (crop == OBJECT_COLOURS[obj.attributes["colour"]]).all(axis=-1).mean()
            assert share > 0.2, (name, obj)
    assert all(truth.match(n) is None for n, r in records.items() if r["kind"] == "photo")


def test_sample_folder_truth_follows_a_smaller_rerun(tmp_path):
    write_sample_source(tmp_path, n_scenes=3, seed=0, include_photos=False)
    write_sample_source(tmp_path, n_scenes=1, seed=0, include_photos=False)
    truth = load_truth(str(tmp_path / TRUTH_FILE))
    assert [i.file_name for i in truth.images.values()] == ["images/scene-00000.png"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth-truth")
    write_synth_dataset(str(out), 12, seed=7, heldout_fraction=0.25, size=(160, 120), shard_size=4)
    return out


def _rows(split_dir):
    return [r for p in sorted((split_dir / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_every_synth_row_matches_one_truth_image(synth):
    ids = {}
    for split in ("train", "heldout"):
        truth = load_truth(str(synth / split / TRUTH_FILE))
        rows = _rows(synth / split)
        matched = [truth.match(r["key"], r["image"]["path"]) for r in rows]
        assert all(matched) and len({m.id for m in matched}) == len(rows) == len(truth.images)
        ids[split] = {m.id for m in matched}
        for row, image in zip(rows, matched, strict=True):
            assert image.key == row["key"] and image.file_name == row["image"]["path"]
            assert (image.width, image.height) == (row["width"], row["height"])
            assert image.captions == [c["text"] for c in row["captions"]]
            detector = [r for r in row["regions"] if r["origin"] == "detector"]
            ocr = [r for r in row["regions"] if r["origin"] == "ocr"]
            assert [o.category for o in image.objects] == [r["category"] for r in detector]
            assert [f"{o.attributes['colour']} {o.category}" for o in image.objects] == [r["phrase"] for r in detector]
            assert [t.text for t in image.texts] == [r["ocr_text"] for r in ocr]
            scale = (row["width"], row["height"]) * 2
            for obj, region in zip(image.objects + image.texts, detector + ocr, strict=True):
                assert [v / s for v, s in zip(obj.bbox, scale, strict=True)] == pytest.approx(region["bbox"], abs=1e-5)
    assert len(ids["train"]) == 9 and len(ids["heldout"]) == 3 and not ids["train"] & ids["heldout"]


def test_finecap_validate_accepts_synth_splits_with_their_truth(synth, capsys):
    for split in ("train", "heldout"):
        assert (synth / split / TRUTH_FILE).is_file()
        assert main(["validate", str(synth / split)]) == 0, capsys.readouterr()
