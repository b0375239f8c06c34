"""Scenes shared by the sample tests: generating them is cheap, but OCR on them is not."""

from __future__ import annotations

import numpy as np
import pytest

from finecap.samples.scenes import Scene, generate_scene, sample_size


def make_scene(seed: int, index: int = 0, **kwargs) -> Scene:
    rng = np.random.default_rng([seed, index])
    return generate_scene(rng, *sample_size(rng), **kwargs)


@pytest.fixture(scope="session")
def scenes() -> list[Scene]:
    """Forty scenes of seed 1: enough to hit every shape, both families and rotated words."""
    return [make_scene(1, i) for i in range(40)]
