"""Word masks: cropped to the ink, rotation grows the box, fonts resolve."""

from __future__ import annotations

import numpy as np

from finecap.samples.text import PILLOW_DEFAULT, available_faces, word_mask


def test_word_mask_is_cropped_to_its_ink():
    face = available_faces()[0]
    mask = np.asarray(word_mask("Garden", face, 40, 0.0))
    assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
    assert 25 <= mask.shape[0] <= 45 and mask.shape[1] > 3 * mask.shape[0]


def test_rotation_makes_the_box_taller():
    face = available_faces()[0]
    flat, tilted = word_mask("Garden", face, 40, 0.0), word_mask("Garden", face, 40, 6.0)
    assert tilted.height > flat.height


def test_pillow_default_font_works_when_dejavu_is_missing():
    mask = word_mask("river", PILLOW_DEFAULT, 30, 0.0)
    assert mask.width > mask.height > 10
