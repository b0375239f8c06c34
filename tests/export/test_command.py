"""`finecap export vllm CHECKPOINT OUT` (finecap/export_command.py): prints the folder, or one line and exit 2."""

from __future__ import annotations

import json
import shutil

import pytest

from finecap.cli import main


def test_export_prints_the_folder(stage3_checkpoint, tmp_path, capsys):
    out = tmp_path / "finevit-vl"
    assert main(["export", "vllm", str(stage3_checkpoint.parents[1]), str(out)]) == 0  # a stage dir: its latest
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "model.safetensors").exists()


def _wrong_stage(checkpoint, tmp_path):
    copy = tmp_path / "stage2-ckpt"
    shutil.copytree(checkpoint, copy)
    state = json.loads((copy / "state.json").read_text())
    (copy / "state.json").write_text(json.dumps({**state, "stage": "stage2"}))
    return copy, "is a stage2 checkpoint"


def _no_lm(checkpoint, tmp_path):
    copy = tmp_path / "no-lm"
    shutil.copytree(checkpoint, copy)
    shutil.rmtree(copy / "lm")
    return copy, "no lm/ folder"


def _no_heads(checkpoint, tmp_path):
    copy = tmp_path / "no-heads"
    shutil.copytree(checkpoint, copy)
    (copy / "heads.safetensors").unlink()
    return copy, "lacks"


def _missing(checkpoint, tmp_path):
    return tmp_path / "nowhere", "no stage3 checkpoint"


@pytest.mark.parametrize("make", [_missing, _wrong_stage, _no_lm, _no_heads])
def test_a_wrong_or_missing_checkpoint_is_one_line_and_exit_2(stage3_checkpoint, tmp_path, capsys, make):
    checkpoint, message = make(stage3_checkpoint, tmp_path)
    assert main(["export", "vllm", str(checkpoint), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot export") and message in err and "\n" not in err, err
    assert not (tmp_path / "out").exists()
