import numpy as np

from finecap.train.tasks import (
    available,
    captioned_regions,
    format_box,
    make_example,
    parse_box,
    sample_example,
)

ROW = {
    "captions": [{"text": "A scene."}],
    "regions": [
        {"bbox": [0.1, 0.2, 0.3, 0.4], "origin": "detector", "caption": "a red circle", "ocr_text": None},
        {"bbox": [0.5, 0.5, 0.9, 0.8], "origin": "detector", "caption": "a blue square", "ocr_text": None},
        {"bbox": [0.0, 0.0, 0.1, 0.1], "origin": "detector", "caption": "a dot", "ocr_text": None},
        {"bbox": [0.6, 0.0, 0.7, 0.1], "origin": "detector", "caption": "a dot", "ocr_text": None},
        {"bbox": [0.2, 0.7, 0.6, 0.9], "origin": "ocr", "caption": "the word", "ocr_text": "garden"},
    ],
}


def test_boxes_are_integers_0_to_1000_in_qwen_format():
    assert format_box([0.1234, 0.0, 1.0, 0.5]) == "<|box_start|>(123,0),(1000,500)<|box_end|>"
    assert parse_box("x <|box_start|>(123,0),(1000,500)<|box_end|> y") == [0.123, 0.0, 1.0, 0.5]
    assert parse_box("<|box_start|>(900,10),(100,20)<|box_end|>") == [0.1, 0.01, 0.9, 0.02]
    assert parse_box("no box here") is None


def test_ambiguous_region_captions_are_not_grounding_targets():
    assert [r["caption"] for r in captioned_regions(ROW)] == ["a red circle", "a blue square"]
    assert available(ROW) == {"global_caption": 1, "box_to_caption": 2, "caption_to_box": 2,
                              "box_to_ocr": 1, "ocr_to_box": 1}


def test_examples_of_each_task():
    ex = make_example(ROW, "caption_to_box", 1)
    assert ex.prompt == "Find the region: a blue square"
    assert ex.answer == "<|box_start|>(500,500),(900,800)<|box_end|>"
    assert make_example(ROW, "box_to_ocr", 0).answer == "garden"
    assert "<|box_start|>(200,700),(600,900)<|box_end|>" in make_example(ROW, "box_to_ocr", 0).prompt
    assert make_example(ROW, "global_caption", 0).answer == "A scene."


def test_sampling_follows_weights_and_skips_unavailable_tasks():
    rng = np.random.default_rng(0)
    tasks = [sample_example(ROW, {"box_to_ocr": 1.0, "caption_to_box": 3.0}, rng).task for _ in range(400)]
    assert set(tasks) == {"box_to_ocr", "caption_to_box"}
    assert 0.65 < tasks.count("caption_to_box") / 400 < 0.85
    no_text = {"captions": [], "regions": ROW["regions"][:2]}
    assert sample_example(no_text, {"box_to_ocr": 1.0}, rng) is None
