"""An exported folder served by vLLM (CPU build, in-process engine) computes what transformers computes.

The engine finds the architecture through finecap's installed `vllm.general_plugins` entry point
(nothing is registered by hand here), expands each prompt's one `<|image_pad|>` into the trainer's
rows * cols / 4 pads, runs the trainer's FineViT and projector and vLLM's own Llama. Checked
on two aspect ratios and three stage III prompts: prompt tokens against the trainer's prompt_ids,
greedy answers token for token against the transformers export (whose generation equals the
trainer's, tests/export/test_hf_model.py), and the log-probability of every prompt and answer token
against the trainer's own forward (VisionLanguageModel on the checkpoint).
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.slow  # engine start ~17-30 s on this machine, first batch a few seconds more

MAX_NEW = 12
PROMPTS = ["Describe this image.", "Find the region: a red circle",
           "Read the text in <|box_start|>(120,80),(640,500)<|box_end|>."]
# fp32 on CPU: vLLM's Llama (fused qkv, its own RMSNorm and attention kernels) sums in another order
# than transformers'; measured max |difference| 4.0e-06 over the 6 requests' prompt and answer tokens.
LOGPROB_ATOL = 1e-4


def _images() -> list[Image.Image]:
    """Two aspect ratios: 200 x 120 resized into the 84 x 84 budget (3 x 2 windows) and 56 x 112 (2 x 4)."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in [(200, 120), (56, 112)]]


@pytest.fixture(scope="session")
def engine(exported):
    """Alive until the session ends: an engine shut down mid-session destroys vLLM's process-wide
    parallel groups, and every later test of the session's other engine (tests/conftest.py
    vllm_engine) then failed with "pipeline model parallel group is not initialized"."""
    from vllm import LLM

    llm = LLM(model=str(exported), dtype="float32", max_model_len=256, max_num_seqs=8, enforce_eager=True, seed=0,
              limit_mm_per_prompt={"image": 1}, mm_processor_cache_gb=0)
    yield llm
    del llm
    gc.collect()


@pytest.fixture(scope="module")
def reference(exported):
    from transformers import AutoModelForImageTextToText

    from finecap.export import FineVitVLProcessor

    model = AutoModelForImageTextToText.from_pretrained(exported).eval()
    return model, FineVitVLProcessor.from_pretrained(exported)


@pytest.fixture(scope="module")
def served(engine, reference):
    """vLLM's outputs for every (image, prompt), prompts as text with one pad (as a user writes them)."""
    from vllm import SamplingParams

    _, processor = reference
    requests = [{"prompt": processor.prompt_text(prompt), "multi_modal_data": {"image": image}}
                for image in _images() for prompt in PROMPTS]
    params = SamplingParams(max_tokens=MAX_NEW, temperature=0.0, logprobs=0, prompt_logprobs=0)
    return engine.generate(requests, params, use_tqdm=False)


def _pairs():
    return [(image, prompt) for image in _images() for prompt in PROMPTS]


def test_the_engine_expands_each_pad_into_the_trainers_prompt(served, reference):
    from finecap.train.stage3 import prompt_ids

    _, processor = reference
    for out, (image, prompt) in zip(served, _pairs(), strict=True):
        n = processor.num_image_tokens(image.width, image.height)
        assert out.prompt_token_ids == prompt_ids(processor.tokenizer, n, prompt)
    assert {processor.num_image_tokens(im.width, im.height) for im in _images()} == {6, 8}


def test_greedy_answers_equal_the_transformers_export_token_for_token(served, reference):
    model, processor = reference
    answers = []
    for out, (image, prompt) in zip(served, _pairs(), strict=True):
        batch = processor([image], [prompt])
        with torch.no_grad():
            ours = model.generate(**batch, max_new_tokens=MAX_NEW)[0, batch["input_ids"].shape[1]:].tolist()
        assert list(out.outputs[0].token_ids) == ours, prompt
        answers.append(tuple(ours))
    assert len(set(answers)) == len(answers)  # answers depend on image and prompt: the check can fail


def test_log_probabilities_equal_the_trainers_forward(served, stage3_checkpoint):
    """vLLM's log-probability of every prompt and answer token against the trainer's own forward."""
    from finecap.train.eval_grounding import load_vlm
    from finecap.train.patches import pack, patchify

    vlm, _, meta = load_vlm(stage3_checkpoint)
    worst = 0.0
    for out, (image, _) in zip(served, _pairs(), strict=True):
        answer = list(out.outputs[0].token_ids)
        ids = torch.tensor([list(out.prompt_token_ids) + answer])
        with torch.no_grad():
            logits = vlm(pack([patchify(image, int(meta["resolution"]) ** 2)]), ids, torch.ones_like(ids))[0]
        expected = torch.log_softmax(logits.double(), -1)[:-1].gather(1, ids[0, 1:, None])[:, 0]
        prompt_lp = [step[token].logprob for step, token in zip(out.prompt_logprobs[1:], out.prompt_token_ids[1:],
                                                                strict=True)]
        answer_lp = [step[token].logprob for step, token in zip(out.outputs[0].logprobs, answer, strict=True)]
        got = torch.tensor(prompt_lp + answer_lp, dtype=torch.float64)
        assert got.shape == expected.shape and expected.min() < -1.0  # not all-certain tokens
        worst = max(worst, float((got - expected).abs().max()))
    assert worst <= LOGPROB_ATOL, worst


def test_chat_sends_the_trainers_prompt_and_answers_as_generate_does(engine, served, reference):
    """LLM.chat (as FineCap's VllmEngine and `vllm serve` call it) renders the folder's chat template:
    the same prompt tokens as the trainer's and the same greedy answer as the text prompt."""
    from vllm import SamplingParams

    from finecap.train.stage3 import prompt_ids

    _, processor = reference
    conversations = [[{"role": "user", "content": [{"type": "image_pil", "image_pil": image},
                                                    {"type": "text", "text": prompt}]}]
                     for image, prompt in _pairs()]
    chats = engine.chat(conversations, SamplingParams(max_tokens=MAX_NEW, temperature=0.0), use_tqdm=False)
    for chat, out, (image, prompt) in zip(chats, served, _pairs(), strict=True):
        n = processor.num_image_tokens(image.width, image.height)
        assert chat.prompt_token_ids == prompt_ids(processor.tokenizer, n, prompt)
        assert list(chat.outputs[0].token_ids) == list(out.outputs[0].token_ids)


def test_a_system_turn_is_refused(engine):
    from vllm import SamplingParams

    image = _images()[0]
    conversation = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "image_pil", "image_pil": image},
                                                 {"type": "text", "text": PROMPTS[0]}]}]
    with pytest.raises(Exception, match="without a system prompt"):
        engine.chat([conversation], SamplingParams(max_tokens=2), use_tqdm=False)
