from __future__ import annotations

import torch
from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

from finecap.models.revision import model_revision
from finecap.models.tiny_gdino import FIXED_IDS, build_tiny_grounding_dino, wordpiece_vocab


def test_vocab_puts_hard_coded_ids_in_place():
    vocab = wordpiece_vocab()
    for i, token in FIXED_IDS.items():
        assert vocab[i] == token
    assert len(set(vocab)) == len(vocab)


def test_same_seed_gives_identical_files(tiny_gdino_dir, tmp_path, same_files):
    again = build_tiny_grounding_dino(tmp_path / "again", seed=0)
    assert same_files(tiny_gdino_dir, again)
    assert model_revision(str(again)) == model_revision(str(tiny_gdino_dir))


def test_other_seed_gives_other_revision(tiny_gdino_dir, tmp_path):
    other = build_tiny_grounding_dino(tmp_path / "other", seed=7)
    assert model_revision(str(other)) != model_revision(str(tiny_gdino_dir))


def test_tokenizer_frames_prompts_like_bert(tiny_gdino_dir):
    tokenizer = AutoProcessor.from_pretrained(tiny_gdino_dir).tokenizer
    ids = tokenizer("A red car. Any text?").input_ids
    assert ids[0] == 101 and ids[-1] == 102
    assert 1012 in ids and ids[-2] == 1029
    assert tokenizer.unk_token_id not in tokenizer("a zebra-striped umbrella, 42").input_ids


def test_forward_and_post_process(tiny_gdino_dir, scene):
    processor = AutoProcessor.from_pretrained(tiny_gdino_dir)
    model = AutoModelForZeroShotObjectDetection.from_pretrained(tiny_gdino_dir).eval()
    image = scene(size=(320, 240))
    inputs = processor(images=image, text=[["a yellow square", "a red circle"]], return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs)
    assert outputs.pred_boxes.shape == (1, model.config.num_queries, 4)

    (result,) = processor.post_process_grounded_object_detection(
        outputs, inputs.input_ids, threshold=0.3, text_threshold=0.3, target_sizes=[image.size[::-1]]
    )
    n = len(result["boxes"])
    assert result["boxes"].shape == (n, 4)
    assert len(result["scores"]) == len(result["text_labels"]) == n
    assert all(float(s) > 0.3 for s in result["scores"])
    assert all(isinstance(label, str) for label in result["text_labels"])
