from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from finecap.models.revision import model_revision
from finecap.models.tiny_vlm import IMAGE_SEQ_LEN, SPECIAL_TOKENS, build_tiny_vlm


def test_same_seed_gives_identical_files(tiny_vlm_dir, tmp_path, same_files):
    again = build_tiny_vlm(tmp_path / "again", seed=0)
    assert same_files(tiny_vlm_dir, again)
    assert model_revision(str(again)) == model_revision(str(tiny_vlm_dir))


def test_other_seed_changes_weights_not_tokenizer(tiny_vlm_dir, tmp_path):
    other = build_tiny_vlm(tmp_path / "other", seed=1)
    assert model_revision(str(other)) != model_revision(str(tiny_vlm_dir))
    assert (other / "tokenizer.json").read_bytes() == (tiny_vlm_dir / "tokenizer.json").read_bytes()


def test_files_are_small_safetensors(tiny_vlm_dir):
    weights = list(tiny_vlm_dir.glob("*.safetensors"))
    assert len(weights) == 1
    assert weights[0].stat().st_size < 10 * 2**20
    assert not list(tiny_vlm_dir.glob("*.bin"))


def test_config_fits_vllm_cpu(tiny_vlm_dir):
    config = json.loads((tiny_vlm_dir / "config.json").read_text())
    text = config["text_config"]
    assert text["hidden_size"] // text["num_attention_heads"] == 64  # a CPU attention head size
    generation = json.loads((tiny_vlm_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == text["eos_token_id"]
    assert 0 <= text["pad_token_id"] < text["vocab_size"]


def test_tokenizer_has_idefics3_tokens_and_english_pieces(tiny_vlm_dir):
    tokenizer = AutoProcessor.from_pretrained(tiny_vlm_dir).tokenizer
    ids = [tokenizer(t, add_special_tokens=False).input_ids for t in SPECIAL_TOKENS]
    assert all(len(i) == 1 for i in ids)  # each special token is one token
    assert len({i[0] for i in ids}) == len(SPECIAL_TOKENS)
    ids = tokenizer("A red car is parked on the left.", add_special_tokens=False).input_ids
    assert len(ids) <= 9  # whole words, not bytes
    assert tokenizer.decode(ids) == "A red car is parked on the left."


def test_processor_reload_and_generate(tiny_vlm_dir, scene):
    processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
    assert type(processor).__name__ == "Idefics3Processor"
    assert processor.image_processor.do_image_splitting is False
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt == "<s>User:<image>Describe this image.<end_of_utterance>\nAssistant:"

    inputs = processor(text=[prompt], images=[[scene()]], return_tensors="pt")
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((inputs.input_ids == image_token_id).sum()) == IMAGE_SEQ_LEN
    assert tuple(inputs.pixel_values.shape[-2:]) == (112, 112)

    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir).eval()
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    new = out[0, inputs.input_ids.shape[1] :]
    assert len(new) == 6
    assert isinstance(processor.decode(new, skip_special_tokens=True), str)


_VLLM_SCRIPT = """
import json, sys
from PIL import Image
from vllm import LLM, SamplingParams
llm = LLM(model=sys.argv[1], dtype="float32", enforce_eager=True, max_model_len=256, max_num_seqs=2,
          limit_mm_per_prompt={"image": 1}, seed=0)
images = [Image.open(p).convert("RGB") for p in sys.argv[2:]]
conversations = [[{"role": "user", "content": [{"type": "image_pil", "image_pil": im},
                                               {"type": "text", "text": "Describe this image."}]}]
                 for im in images]
outputs = llm.chat(conversations, SamplingParams(max_tokens=8, temperature=0.0), use_tqdm=False)
print("RESULT " + json.dumps([[len(o.outputs[0].token_ids), o.outputs[0].text] for o in outputs]))
"""


@pytest.mark.slow
def test_vllm_serves_tiny_vlm(tiny_vlm_dir, scene, tmp_path):
    """In its own process: a second in-process engine (and its teardown) would disturb the
    session engine other tests share."""
    paths = []
    for shade in (0, 90):
        paths.append(tmp_path / f"scene{shade}.png")
        scene(shade=shade).save(paths[-1])
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", _VLLM_SCRIPT, str(tiny_vlm_dir), *map(str, paths)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    outputs = json.loads(line.removeprefix("RESULT "))
    assert len(outputs) == 2
    for num_tokens, text in outputs:
        assert num_tokens > 0 and isinstance(text, str)
