"""Stage II's region term: which tokens a box pools, which regions a row offers, and the loss."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from finecap.train import distributed as D
from finecap.train.patches import pack, patch_positions
from finecap.train.region_contrast import (
    box_members,
    region_batch,
    region_text_loss,
    sample_regions,
    text_key,
)
from finecap.train.vit import PATCH_DIM

from .conftest import tiny_config


def _images(*grids: tuple[int, int]):
    """Packed images of the given (rows, cols) patch grids, patches numbered by image."""
    return pack([(torch.full((r * c, PATCH_DIM), float(i)), patch_positions(r, c)) for i, (r, c) in enumerate(grids)])


def _members(images, region_image, boxes):
    token, region = box_members(images, torch.tensor(region_image), torch.tensor(boxes, dtype=torch.float32))
    positions = images.positions.reshape(-1, 2)[images.token_index]
    ids = images.image_ids()
    return [sorted((int(ids[t]), *map(int, positions[t])) for t, r in zip(token, region, strict=True) if r == k)
            for k in range(len(region_image))]


def test_a_box_pools_the_tokens_whose_patch_centres_it_holds_in_its_own_image_only():
    images = _images((4, 4), (2, 6))  # the second image is packed first (longer), its tokens still its own
    top_left, right_half = _members(images, [0, 1], [[0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 1.0]])
    assert top_left == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)]
    assert right_half == [(1, r, c) for r in range(2) for c in (3, 4, 5)]


def test_a_box_smaller_than_a_patch_pools_the_token_nearest_its_centre():
    (tiny,) = _members(_images((4, 4)), [0], [[0.80, 0.30, 0.82, 0.32]])
    assert tiny == [(0, 1, 3)]  # centre (x 0.81, y 0.31): column 3, row 1 of a 4 x 4 grid


def _row():
    region = {"origin": "detector", "phrase": "red circle", "category": "circle"}
    return {"regions": [
        {**region, "bbox": [0.0, 0.0, 0.1, 0.1], "caption": "a red circle on the left"},
        {**region, "bbox": [0.5, 0.5, 0.6, 0.6], "caption": "a red circle on the left"},  # ambiguous
        {**region, "bbox": [0.2, 0.2, 0.3, 0.3], "caption": "a blue star", "phrase": "blue star", "category": "star"},
        {"origin": "ocr", "bbox": [0.7, 0.7, 0.9, 0.8], "ocr_text": "STOP", "caption": "the word STOP"},
    ]}


def test_captions_must_be_unique_in_the_image_phrases_and_categories_may_repeat():
    rng = np.random.default_rng(0)
    assert [text for _, text in sample_regions(_row(), 5, rng)] == ["a blue star"]
    assert sorted(text for _, text in sample_regions(_row(), 5, rng, "category")) == ["circle", "circle", "star"]
    assert len(sample_regions(_row(), 2, rng, "phrase")) == 2  # at most k, ocr regions never


def test_region_batch_numbers_regions_by_image_and_keys_equal_texts_equally():
    texts, tensors = region_batch([[((0, 0, 1, 1), "circle")], [], [((0, 0, 0.5, 0.5), "star"), ((0, 0, 1, 1), "circle")]])
    assert texts == ["circle", "star", "circle"]
    assert tensors["region_image"].tolist() == [0, 2, 2]
    keys = tensors["region_text_key"].tolist()
    assert keys[0] == keys[2] != keys[1] and keys[0] == text_key("circle") >= 0


def test_every_equal_text_is_a_positive():
    regions = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    keys = torch.tensor([text_key(t) for t in ("circle", "circle", "star")])
    scale, bias = torch.tensor([np.log(10.0)]), torch.tensor([-5.0])
    dist = D.Dist()  # one process: nothing to gather
    matched = region_text_loss(regions, regions.clone(), keys, scale, bias, dist)
    # The same embeddings with the two circles' texts told apart: region 0 now must reject text 1.
    apart = region_text_loss(regions, regions.clone(), torch.tensor([1, 2, 3]), scale, bias, dist)
    assert matched < apart
    empty = region_text_loss(regions[:0], regions[:0], keys[:0], scale, bias, dist)
    assert float(empty) == 0.0


@pytest.mark.train
def test_stage2_with_the_region_term_trains_and_logs_its_loss(small_synth, tmp_path):
    from finecap.train.loop import run_stage

    config = tiny_config(small_synth, tmp_path, "stage2.steps=3", "stage2.init_from=null", "stage2.batch_size=8",
                         "stage2.regions.weight=1.0", "stage2.regions.text=category", "data.num_workers=0",
                         "run.log_every=1000", "model.vision.layers=1",
                         "stage2.phases=[{resolution: 84, text_length: 24}]")
    summary = run_stage(config, "stage2")
    assert summary.step == 3 and np.isfinite(summary.loss)
    with (tmp_path / "stage2" / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(float(r["region_loss"]) > 0 for r in rows)
