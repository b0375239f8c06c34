"""The exported folder, loaded by plain transformers, computes what the trainer computes.

(a) logits equal VisionLanguageModel.forward on the same images and prompts, and (b) greedy
generation equals the trainer's Grounder.generate token for token. Both run fp32 on CPU over
the same modules, so the difference measured is exactly 0; the tolerance below only allows for
kernels that reorder sums on other machines.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.export.conftest import RESOLUTION

ATOL = 1e-5  # fp32 on CPU; measured max |difference| 0.0 over logits up to |4.2|
MAX_NEW = 12
PROMPTS = ["Describe this image.", "Find the region: a red circle",
           "Read the text in <|box_start|>(120,80),(640,500)<|box_end|>."]


def _images() -> list[Image.Image]:
    """Two aspect ratios: one resized down to the 84 x 84 pixel budget, one already on the 28 grid."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in [(200, 120), (56, 112)]]


@pytest.fixture(scope="module")
def loaded(exported):
    from transformers import AutoModelForImageTextToText

    import finecap.export  # noqa: F401  (registers finevit_vl)

    model, info = AutoModelForImageTextToText.from_pretrained(exported, output_loading_info=True)
    return model.eval(), info


@pytest.fixture(scope="module")
def trainer(stage3_checkpoint):
    from finecap.train.eval_grounding import load_vlm

    return load_vlm(stage3_checkpoint)


@pytest.fixture(scope="module")
def processor(exported):
    from finecap.export import FineVitVLProcessor

    return FineVitVLProcessor.from_pretrained(exported)


def test_the_folder_loads_through_the_registered_classes_with_every_weight(loaded, exported):
    from finecap.export import FineVitVLConfig, FineVitVLForConditionalGeneration

    model, info = loaded
    assert isinstance(model, FineVitVLForConditionalGeneration) and isinstance(model.config, FineVitVLConfig)
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys
    assert "auto_map" not in json.loads((exported / "config.json").read_text())  # nothing for trust_remote_code
    assert model.language_model.lm_head.weight is model.language_model.model.embed_tokens.weight  # tied on load


def test_logits_equal_the_trainers_forward(loaded, trainer, processor):
    from finecap.train.patches import pack, patchify

    model, _ = loaded
    vlm, _, meta = trainer
    images = _images()
    batch = processor(images, PROMPTS[:2])
    with torch.no_grad():
        ours = model(**batch).logits
        theirs = vlm(pack([patchify(im, RESOLUTION**2) for im in images]), batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert meta["resolution"] == RESOLUTION
    assert ours.shape == theirs.shape and ours.abs().max() > 1.0  # not a degenerate all-zero output
    torch.testing.assert_close(ours[real], theirs[real], atol=ATOL, rtol=0)


def test_greedy_generation_equals_the_grounder_token_for_token(loaded, trainer, processor, monkeypatch):
    from finecap.train.eval_grounding import Grounder
    from finecap.train.patches import pack, patchify

    model, _ = loaded
    vlm, tokenizer, _ = trainer
    grounder = Grounder(vlm, tokenizer, RESOLUTION, max_new_tokens=MAX_NEW)
    generated = []
    original = vlm.lm.generate
    monkeypatch.setattr(vlm.lm, "generate", lambda **kw: generated.append(original(**kw)) or generated[-1])
    answers = []
    for image in _images():
        texts = grounder.generate(vlm.image_tokens(pack([patchify(image, RESOLUTION**2)])), PROMPTS)
        batch = processor([image] * len(PROMPTS), PROMPTS)
        with torch.no_grad():
            ours = model.generate(**batch, max_new_tokens=MAX_NEW)[:, batch["input_ids"].shape[1]:]
        assert torch.equal(ours, generated[-1])
        assert processor.batch_decode(ours, skip_special_tokens=False) == texts
        answers.append(texts)
    assert answers[0] != answers[1] and len(set(answers[0])) > 1  # answers depend on image and prompt


def test_a_bf16_load_runs_the_same_model(exported, loaded, processor):
    """Patches arrive fp32 and are cast to the tower's dtype (the trainer's pack() builds fp32 rows)."""
    from transformers import AutoModelForImageTextToText

    model, _ = loaded
    half = AutoModelForImageTextToText.from_pretrained(exported, dtype=torch.bfloat16).eval()
    batch = processor(_images(), PROMPTS[:2])
    with torch.no_grad():
        full, low = model(**batch).logits, half(**batch).logits
    real = batch["attention_mask"].bool()
    assert low.dtype == torch.bfloat16 and half.vision.rope.inv_freq.dtype == torch.float32
    # bf16 keeps ~3 significant digits: measured max |difference| 0.12 on logits up to |4.2|
    torch.testing.assert_close(low[real].float(), full[real], atol=0.3, rtol=0)
