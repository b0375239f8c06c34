"""`finecap eval longtext`: image + long-caption JSONL in the benchmarks' field names, and the text length."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from finecap.cli import main
from finecap.train.eval_inputs import EvalInputError
from finecap.train.eval_longtext import read_pairs
from tests.train.eval_sets import finecap_retrieval, last_json, one_error_line, write_heldout_images


def _write(path, rows: list[dict]):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_field_names_of_the_benchmarks_read_alike(tmp_path):
    path = _write(tmp_path / "pairs.jsonl", [
        {"image": "a.jpg", "caption": "ours"},
        {"image_file": "b.jpg", "description": "DOCCI's names", "split": "test", "example_id": "test_01"},
        {"file_name": "c.jpg", "long_caption": "another"},
    ])
    pairs = read_pairs(str(path), "/imgs")
    assert pairs.uris == ["/imgs/a.jpg", "/imgs/b.jpg", "/imgs/c.jpg"]
    assert pairs.texts == ["ours", "DOCCI's names", "another"] and pairs.text_image == [0, 1, 2]


def test_split_filter_and_limit(tmp_path):
    path = _write(tmp_path / "docci.jsonl", [{"image_file": f"{i}.jpg", "description": f"d{i}", "split": s}
                                            for i, s in enumerate(["train", "test", "qual_dev", "test", "test"])])
    pairs = read_pairs(str(path), "/docci/images", split="test", limit=2)
    assert pairs.uris == ["/docci/images/1.jpg", "/docci/images/3.jpg"]
    with pytest.raises(EvalInputError, match="no pairs in split 'val'"):
        read_pairs(str(path), "/x", split="val")
    plain = _write(tmp_path / "plain.jsonl", [{"image": "a.jpg", "caption": "c"}])
    with pytest.raises(EvalInputError, match="needs a `split` field on every line"):
        read_pairs(str(plain), "/x", split="test")


def test_an_image_named_twice_owns_both_captions(tmp_path):
    path = _write(tmp_path / "pairs.jsonl", [{"image": "a.jpg", "caption": "one"}, {"image": "b.jpg", "caption": "x"},
                                             {"image": "a.jpg", "caption": "two"}])
    pairs = read_pairs(str(path), "/imgs")
    assert pairs.uris == ["/imgs/a.jpg", "/imgs/b.jpg"] and pairs.text_image == [0, 1, 0]


def test_a_line_without_a_caption_is_named(tmp_path):
    path = _write(tmp_path / "pairs.jsonl", [{"image": "a.jpg", "caption": "one"}, {"image": "b.jpg", "summary": "x"}])
    with pytest.raises(EvalInputError, match=r"pairs.jsonl, pair 2: no caption / description / long_caption / text"):
        read_pairs(str(path), "/imgs")


def test_bad_input_is_one_error_line(tmp_path, capsys):
    Image.new("RGB", (30, 30)).save(tmp_path / "a.png")
    path = _write(tmp_path / "pairs.jsonl", [{"image": "a.png", "caption": "one"}, {"image": "gone.png", "caption": "x"}])
    base = ["eval", "longtext", "--checkpoint", "nowhere", "--images", str(tmp_path)]
    assert main([*base, "--pairs", str(tmp_path / "absent.jsonl")]) == 2
    assert "absent.jsonl: no such file" in one_error_line(capsys)
    assert main([*base, "--pairs", str(path)]) == 2
    assert "gone.png not found" in one_error_line(capsys)
    assert main([*base, "--pairs", str(path), "--limit", "1"]) == 2
    assert "--checkpoint: no stage2 checkpoint at nowhere" in one_error_line(capsys)



@pytest.mark.slow
@pytest.mark.train
def test_longtext_on_the_heldout_scenes_at_the_trained_and_a_given_text_length(stage2_run, synth, run_dir, tmp_path,
                                                                                 capsys):
    """DOCCI-named JSONL of the held-out scenes and their long captions: at the checkpoint's text
    length the numbers are the finecap protocol's long-caption ones; --text-length cuts captions."""
    from finecap.train.embedding import Encoder, token_counts

    reference = finecap_retrieval(run_dir / "stage2", synth / "heldout", capsys)["long"]
    images = write_heldout_images(synth / "heldout", tmp_path / "images")
    pairs = tmp_path / "docci.jsonl"
    pairs.write_text("".join(json.dumps({"example_id": i["file"], "split": "test", "image_file": i["file"],
                                         "description": i["long"]}) + "\n" for i in images))
    base = ["eval", "longtext", "--checkpoint", str(run_dir / "stage2"), "--pairs", str(pairs),
            "--images", str(tmp_path / "images"), "--split", "test", "--batch-size", "64", "--json"]
    assert main(base) == 0
    result = last_json(capsys)
    encoder = Encoder.load(run_dir / "stage2")
    trained = encoder.text_length
    assert (result["text_length"], result["text_length_from"], result["trained_text_length"]) == (trained, "checkpoint",
                                                                                                  trained)
    assert result["image_to_text"] == pytest.approx(reference["image_to_text"])
    assert result["text_to_image"] == pytest.approx(reference["text_to_image"])
    counts = token_counts(encoder.tokenizer, [i["long"] for i in images])
    assert result["captions"]["truncated"] == sum(c > trained for c in counts)

    assert main([*base, "--text-length", "8"]) == 0
    result = last_json(capsys)
    assert (result["text_length"], result["text_length_from"]) == (8, "--text-length")
    assert result["captions"]["truncated"] == sum(c > 8 for c in counts) == 100

    most = encoder.max_text_positions
    assert main([*base, "--text-length", str(most + 1)]) == 2
    assert f"--text-length {most + 1}: the text tower takes 1..{most} tokens" in one_error_line(capsys)
