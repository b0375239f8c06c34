"""Shape masks: every shape draws, stays inside its cell and keeps a solid interior."""

from __future__ import annotations

import numpy as np
import pytest

from finecap.samples.shapes import shape_mask
from finecap.samples.vocab import SHAPES


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_mask_is_solid_and_inside_its_cell(shape):
    mask = np.asarray(shape_mask(shape, 60))
    assert mask.shape == (60, 60)
    assert (mask == 255).mean() > 0.25  # enough fully covered pixels to carry the exact colour
    assert not mask[0].any() and not mask[-1].any() and not mask[:, 0].any() and not mask[:, -1].any()


def test_ring_has_a_hole_and_unknown_shapes_fail():
    ring = np.asarray(shape_mask("ring", 60))
    assert ring[30, 30] == 0 and ring[30, 5] == 255
    with pytest.raises(ValueError, match="unknown shape"):
        shape_mask("blob", 60)
