"""The processor prepares images and prompts exactly as the trainer does, and checks its settings."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tests.export.conftest import RESOLUTION


@pytest.fixture(scope="module")
def processor(exported):
    from finecap.export import FineVitVLProcessor

    return FineVitVLProcessor.from_pretrained(exported)


def test_images_are_patchify_and_prompts_are_prompt_ids(processor):
    from finecap.train.patches import grid_of, patch_positions, patchify
    from finecap.train.stage3 import prompt_ids
    from finecap.train.tokens import IMAGE_PAD

    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in [(300, 90), (60, 60)]]
    batch = processor(images, ["Describe this image.", "Find the text: EXIT"])
    expected = [patchify(im, RESOLUTION**2) for im in images]
    assert torch.equal(batch["pixel_values"], torch.cat([p for p, _ in expected]))
    for (rows, cols), (_, positions) in zip(batch["image_grid_hw"].tolist(), expected, strict=True):
        assert (rows, cols) == grid_of(positions) and torch.equal(patch_positions(rows, cols), positions)
    pad = processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    for row, mask, image, prompt in zip(batch["input_ids"], batch["attention_mask"], images,
                                        ["Describe this image.", "Find the text: EXIT"], strict=True):
        n = processor.num_image_tokens(image.width, image.height)
        assert row[mask.bool()].tolist() == prompt_ids(processor.tokenizer, n, prompt)  # left padding
        assert int((row == pad).sum()) == n


def test_prompt_text_with_its_pad_expanded_tokenizes_to_the_trainers_prompt(processor):
    """What a vLLM prompt looks like: one `<|image_pad|>` that the engine repeats per merged window."""
    from finecap.train.stage3 import prompt_ids
    from finecap.train.tokens import IMAGE_PAD

    text = processor.prompt_text("Describe the region <|box_start|>(10,20),(300,400)<|box_end|>.")
    ids = processor.tokenizer(text.replace(IMAGE_PAD, IMAGE_PAD * 9), add_special_tokens=False)["input_ids"]
    assert ids == prompt_ids(processor.tokenizer, 9, "Describe the region <|box_start|>(10,20),(300,400)<|box_end|>.")


@pytest.mark.parametrize(("key", "value"), [("patch_size", 16), ("merge_size", 1), ("image_mean", [0.48, 0.46, 0.41]),
                                            ("colour", "rgb")])
def test_settings_the_trainer_does_not_use_fail_naming_the_key(exported, tmp_path, key, value):
    from finecap.export import FineVitVLProcessor
    from finecap.export.hf_config import ExportConfigError

    folder = tmp_path / "edited"
    shutil.copytree(exported, folder)
    settings = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**settings, key: value}))
    with pytest.raises(ExportConfigError, match=key):
        FineVitVLProcessor.from_pretrained(folder)
