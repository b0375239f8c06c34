"""Reading benchmark files: one-line errors naming the file, presence checked folder by folder."""

from __future__ import annotations

import pytest
from PIL import Image

from finecap.errors import UserError
from finecap.train import eval_inputs
from finecap.train.eval_inputs import EvalInputError


def test_a_missing_file_names_the_flag_and_the_path(tmp_path):
    with pytest.raises(UserError, match=r"^--classes .*absent\.txt: no such file$"):
        eval_inputs.read_text(str(tmp_path / "absent.txt"), "--classes")


def test_jsonl_errors_name_the_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"image": "a.png"}\n\n[1, 2]\n')
    with pytest.raises(EvalInputError, match=r"line 3: expected a JSON object"):
        eval_inputs.read_jsonl(str(path), "--pairs")
    path.write_text('{"image": "a.png"}\n{"image": \n')
    with pytest.raises(EvalInputError, match=r"line 2: not JSON"):
        eval_inputs.read_jsonl(str(path), "--pairs")


def test_tables_are_csv_by_suffix_else_jsonl(tmp_path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("image,label\na.png,3\nb.png,dog\n")
    assert eval_inputs.read_table(str(csv_file), "--labels") == [{"image": "a.png", "label": "3"},
                                                                 {"image": "b.png", "label": "dog"}]
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text('{"image": "a.png", "label": 3}\n')
    assert eval_inputs.read_table(str(jsonl), "--labels") == [{"image": "a.png", "label": 3}]


def test_pick_field_takes_the_first_alias_present():
    row = {"image_file": "x.jpg", "description": "long"}
    assert eval_inputs.pick_field(row, ("image", "image_file"), "--pairs", "line 1") == "x.jpg"
    with pytest.raises(EvalInputError, match="line 1: no caption / text field"):
        eval_inputs.pick_field(row, ("caption", "text"), "--pairs", "line 1")


def test_resolve_keeps_absolute_paths_and_uris():
    assert eval_inputs.resolve("/data", "val/a.jpg") == "/data/val/a.jpg"
    assert eval_inputs.resolve("s3://bucket/coco", "val/a.jpg") == "s3://bucket/coco/val/a.jpg"
    assert eval_inputs.resolve("/data", "/elsewhere/a.jpg") == "/elsewhere/a.jpg"
    assert eval_inputs.resolve("/data", "s3://b/a.jpg") == "s3://b/a.jpg"


def test_subfolders_are_sorted_folders_only(tmp_path):
    for name in ("n02", "n01", "n10"):
        (tmp_path / name).mkdir()
    (tmp_path / "LICENSE").write_text("not a class")
    assert eval_inputs.subfolders(str(tmp_path), "--folder") == ["n01", "n02", "n10"]
    with pytest.raises(EvalInputError, match="no such folder"):
        eval_inputs.subfolders(str(tmp_path / "absent"), "--folder")


def test_check_present_reports_the_first_missing_image_and_how_many_more(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "1.png")
    present = str(tmp_path / "a" / "1.png")
    eval_inputs.check_present([present], "--images")
    missing = [str(tmp_path / "a" / "2.png"), str(tmp_path / "b" / "3.png")]
    with pytest.raises(EvalInputError, match=r"--images: image .*2\.png not found \(and 1 more\)"):
        eval_inputs.check_present([present, *missing], "--images")


def test_an_image_that_does_not_decode_is_named(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(EvalInputError, match=r"image .*bad\.jpg does not decode"):
        eval_inputs.load_image(str(bad))
    Image.new("L", (5, 3), 7).save(tmp_path / "grey.png")
    image = eval_inputs.load_image(str(tmp_path / "grey.png"))
    assert image.mode == "RGB" and image.size == (5, 3)
