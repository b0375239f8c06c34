"""The sample folder: byte-identical reruns, ground truth that matches the files."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from finecap.samples.photos import PHOTOS
from finecap.samples.source import load_ground_truth, scene_record, write_sample_source


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_arguments_write_byte_identical_folders(tmp_path):
    a = write_sample_source(tmp_path / "a", n_scenes=4, seed=5)
    b = write_sample_source(str(tmp_path / "b"), n_scenes=4, seed=5)
    assert a == tmp_path / "a" and b == tmp_path / "b"
    files = _snapshot(a)
    assert files == _snapshot(b)
    expected = {f"images/scene-{i:05d}.png" for i in range(4)} | {f"images/photo-{n}.jpg" for n in PHOTOS}
    assert set(files) == expected | {"ground_truth.jsonl", "truth.coco.json"}
    assert not list(a.rglob(".*.tmp"))


def test_other_seed_gives_other_scenes_and_scenes_do_not_depend_on_the_count(tmp_path):
    a = _snapshot(write_sample_source(tmp_path / "a", n_scenes=3, seed=0, include_photos=False))
    b = _snapshot(write_sample_source(tmp_path / "b", n_scenes=3, seed=1, include_photos=False))
    for i in range(3):
        assert a[f"images/scene-{i:05d}.png"] != b[f"images/scene-{i:05d}.png"]
    assert a["images/scene-00002.png"] == scene_record(2, seed=0)[0]


def test_rerun_with_fewer_images_removes_the_stale_ones(tmp_path):
    folder = write_sample_source(tmp_path, n_scenes=3, seed=0)
    (folder / "images" / "keep-me.txt").write_text("not ours")
    write_sample_source(folder, n_scenes=1, seed=0, include_photos=False)
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["keep-me.txt", "scene-00000.png"]
    assert list(load_ground_truth(folder)) == ["images/scene-00000.png"]


def test_ground_truth_describes_each_file(tmp_path):
    folder = write_sample_source(tmp_path, n_scenes=3, seed=0)
    truth = load_ground_truth(folder)
    assert list(truth) == sorted(truth)
    assert len(truth) == 3 + len(PHOTOS)
    for file_name, record in truth.items():
        assert record["file_name"] == file_name
        with Image.open(folder / file_name) as image:
            assert image.size == (record["width"], record["height"]) and image.mode == "RGB"
        assert record["caption"]
        if record["kind"] == "photo":
            assert record["objects"] is None and record["words"] is None
            continue
        assert record["kind"] == "scene" and record["objects"] and record["words"]
        for item in record["objects"] + record["words"]:
            assert len(item["bbox"]) == 4 and all(0.0 <= v <= 1.0 for v in item["bbox"])
            assert item["caption"] and item["position"]
        for word in record["words"]:
            assert f"'{word['text']}'" in record["caption"]
            assert isinstance(word["rotation"], float)


def test_zero_scenes_without_photos_writes_an_empty_ground_truth(tmp_path):
    folder = write_sample_source(tmp_path, n_scenes=0, include_photos=False)
    assert (folder / "ground_truth.jsonl").read_bytes() == b""
    assert load_ground_truth(folder) == {}
