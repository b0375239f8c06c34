"""Scenes: determinism, and ground truth that matches the drawn pixels exactly."""

from __future__ import annotations

import itertools
import re
from collections import Counter

import numpy as np
import pytest

from finecap.samples import vocab
from finecap.samples.scenes import Scene, generate_scene, sample_size
from tests.samples.conftest import make_scene


def _boxes(scene: Scene) -> list[tuple[int, int, int, int]]:
    return [tuple(o.bbox_px) for o in scene.objects] + [tuple(w.bbox_px) for w in scene.words]


def test_same_seed_same_scene_different_seed_different_scene():
    a, b = make_scene(7, 3), make_scene(7, 3)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.to_record() == b.to_record()
    others = [make_scene(8, 3), make_scene(7, 4)]
    for other in others:
        assert other.to_record() != a.to_record()
        assert other.image.size != a.image.size or other.image.tobytes() != a.image.tobytes()


def test_every_scene_has_objects_and_words_with_valid_boxes(scenes):
    for scene in scenes:
        assert scene.image.size == (scene.width, scene.height) and scene.image.mode == "RGB"
        assert 1 <= len(scene.objects) <= 4 and 1 <= len(scene.words) <= 3
        for item in [*scene.objects, *scene.words]:
            x1, y1, x2, y2 = item.bbox_px
            assert 0 <= x1 < x2 <= scene.width and 0 <= y1 < y2 <= scene.height
            expected = (x1 / scene.width, y1 / scene.height, x2 / scene.width, y2 / scene.height)
            assert item.bbox == pytest.approx(expected, abs=1e-6)
            assert all(0.0 <= v <= 1.0 for v in item.bbox)


def test_boxes_do_not_overlap(scenes):
    for scene in scenes:
        for a, b in itertools.combinations(_boxes(scene), 2):
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def _background_rgb(scene: Scene, index: int = 0) -> tuple[int, int, int]:
    family = vocab.LIGHT_BACKGROUNDS if scene.background.family == "light" else vocab.DARK_BACKGROUNDS
    return family[scene.background.colours[index]]


def _pack(rgb: np.ndarray) -> np.ndarray:
    """One int per pixel, so colours can be counted with numpy."""
    rgb = rgb.astype(np.int32)
    return rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]


def test_object_colour_dominates_its_box(scenes):
    """The object's exact colour is the commonest in its box, after a plain background's.

    (A small star covers under half its box, so a plain background can outnumber it; a
    gradient spreads the background over many colours.)
    """
    for scene in scenes:
        pixels = np.asarray(scene.image)
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.bbox_px
            crop = pixels[y1:y2, x1:x2].reshape(-1, 3)
            counts = Counter(dict(zip(*np.unique(_pack(crop), return_counts=True), strict=True)))
            if scene.background.kind == "plain":
                counts.pop(_pack(np.array([_background_rgb(scene)]))[0], None)
            ((packed, n),) = counts.most_common(1)
            top = (int(packed) >> 16, int(packed) >> 8 & 255, int(packed) & 255)
            assert top == obj.rgb == vocab.OBJECT_COLOURS[obj.colour], obj
            assert n / len(crop) >= 0.25, (obj, n / len(crop))


def test_word_boxes_hold_the_word_colour(scenes):
    for scene in scenes:
        pixels = np.asarray(scene.image)
        for word in scene.words:
            x1, y1, x2, y2 = word.bbox_px
            crop = pixels[y1:y2, x1:x2].reshape(-1, 3)
            share = np.all(crop == word.rgb, axis=1).mean()
            assert share >= 0.05, (word, share)


def test_boxes_are_tight_around_all_ink_on_plain_backgrounds(scenes):
    """Every pixel that differs from the background is in a box, and ink touches every box edge."""
    plain = [s for s in scenes if s.background.kind == "plain"]
    assert len(plain) >= 5
    for scene in plain:
        ink = np.any(np.asarray(scene.image) != _background_rgb(scene), axis=2)
        covered = np.zeros_like(ink)
        for x1, y1, x2, y2 in _boxes(scene):
            covered[y1:y2, x1:x2] = True
            box = ink[y1:y2, x1:x2]
            # Edge pixels may be so faint that blending rounds them back to the background.
            assert box[:2].any() and box[-2:].any() and box[:, :2].any() and box[:, -2:].any()
        assert not (ink & ~covered).any()


def test_colour_and_shape_pairs_and_words_are_unique_within_a_scene(scenes):
    for scene in scenes:
        pairs = [(o.colour, o.shape) for o in scene.objects]
        assert len(pairs) == len(set(pairs))
        texts = [w.text.lower() for w in scene.words]
        assert len(texts) == len(set(texts))


def test_captions_mention_every_object_and_word(scenes):
    for scene in scenes:
        caption = scene.caption
        count = vocab.NUMBER_WORDS[len(scene.objects)]
        assert re.search(rf"\b{count} shapes?:", caption), caption
        for obj in scene.objects:
            assert obj.caption in caption
            assert obj.caption.startswith(f"a {obj.size} {obj.colour} {obj.shape} ")
        for word in scene.words:
            assert f"The word '{word.text}' is written in {word.colour}" in caption
            assert word.caption == f"the word '{word.text}' in {word.colour}"
        for name in scene.background.colours:
            assert name in caption


def test_vocabulary_is_exercised(scenes):
    """The fixture scenes cover every shape, both sizes, both families and rotated words."""
    assert {o.shape for s in scenes for o in s.objects} == set(vocab.SHAPES)
    assert {o.size for s in scenes for o in s.objects} == set(vocab.SIZES)
    assert {s.background.family for s in scenes} == {"light", "dark"}
    assert {s.background.kind for s in scenes} == {"plain", "gradient"}
    rotations = [w.rotation for s in scenes for w in s.words]
    assert any(r != 0 for r in rotations) and all(abs(r) <= 7 for r in rotations)


def test_sample_size_varies_sides_and_orientation():
    rng = np.random.default_rng(0)
    sizes = [sample_size(rng) for _ in range(200)]
    assert len(set(sizes)) > 150
    assert any(w < h for w, h in sizes) and any(w > h for w, h in sizes)
    assert all(0.8 * 480 <= min(w, h) and max(w, h) <= 1.25 * 640 for w, h in sizes)


def test_small_images_still_get_a_scene_and_tiny_ones_are_refused():
    scene = generate_scene(np.random.default_rng(3), 128, 96)
    assert scene.objects or scene.words
    with pytest.raises(ValueError, match="at least 96"):
        generate_scene(np.random.default_rng(3), 95, 200)
