"""The export folder: its layout, safetensors only, the weight-name mapping and a safe OUT."""

from __future__ import annotations

import json

import pytest
import torch

LAYOUT = {"chat_template.jinja", "config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json",
          "tokenizer.json", "tokenizer_config.json"}
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # a pickle protocol header; torch.save's zip container


def test_the_folder_has_the_documented_files_and_no_pickle(exported):
    files = {p.name for p in exported.iterdir()}
    assert files == LAYOUT
    for path in exported.iterdir():
        assert not path.read_bytes()[:4].startswith(PICKLE_MAGIC), path.name
    assert json.loads((exported / "config.json").read_text())["model_type"] == "finevit_vl"
    generation = json.loads((exported / "generation_config.json").read_text())
    config = json.loads((exported / "config.json").read_text())["text_config"]
    assert generation["eos_token_id"] == config["eos_token_id"] and generation["do_sample"] is False


def test_weights_are_the_checkpoints_under_the_export_names(exported, stage3_checkpoint):
    from safetensors.torch import load_file

    from finecap.train.checkpoint import load_heads

    weights = load_file(exported / "model.safetensors")
    source = {**{f"vision.{k}": v for k, v in load_file(stage3_checkpoint / "vision.safetensors").items()},
              **load_heads(stage3_checkpoint),
              **{f"language_model.{k}": v for k, v in load_file(stage3_checkpoint / "lm" / "model.safetensors").items()}}
    assert set(weights) == set(source)  # vision.*, projector.*, language_model.*; the tied lm_head is not stored
    assert {name.split(".")[0] for name in weights} == {"vision", "projector", "language_model"}
    assert "language_model.lm_head.weight" not in weights
    for name, tensor in weights.items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, source[name]), name


def test_a_second_export_replaces_the_first_and_a_foreign_out_is_refused(stage3_checkpoint, tmp_path):
    from finecap.export import ExportError, export_checkpoint

    out = tmp_path / "model"
    export_checkpoint(stage3_checkpoint, out)
    (out / "stale.txt").write_text("from an earlier export")
    assert export_checkpoint(stage3_checkpoint, out) == out and not (out / "stale.txt").exists()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"not a model")
    with pytest.raises(ExportError, match="not a FineViT-VL export"):
        export_checkpoint(stage3_checkpoint, foreign)
    assert (foreign / "cat.jpg").exists() and not list(tmp_path.glob(".*tmp-*"))


def test_the_chat_template_renders_the_trainers_prompt(exported):
    """vLLM's chat front end writes the image placeholder, "\\n", then the text; the template gives
    back the trainer's `<|vision_start|><|image_pad|><|vision_end|>PROMPT\\n` (and refuses a system turn)."""
    from transformers import AutoTokenizer

    from finecap.export.vllm_model import IMAGE_PLACEHOLDER

    tokenizer = AutoTokenizer.from_pretrained(exported)
    user = {"role": "user", "content": f"{IMAGE_PLACEHOLDER}\nDescribe this image."}
    rendered = tokenizer.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
    assert rendered == f"{IMAGE_PLACEHOLDER}Describe this image.\n"
    turns = [user, {"role": "assistant", "content": "A red circle."}]
    assert tokenizer.apply_chat_template(turns, tokenize=False).endswith(f"\nA red circle.{tokenizer.eos_token}")
    with pytest.raises(Exception, match="without a system prompt"):
        tokenizer.apply_chat_template([{"role": "system", "content": "x"}, user], tokenize=False)
