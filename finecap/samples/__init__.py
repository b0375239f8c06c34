"""Procedural sample images with exact ground truth, and the bundled offline sample source.

Scenes are drawn from a fixed vocabulary (shapes, colours, sizes, positions, words), so every
box and caption is known exactly: `make build-dataset` builds from them offline, and the
synthetic benchmarks score models against them. `photos` adds a few real photographs.
"""

from finecap.samples.scenes import Background, Scene, SceneObject, SceneWord, generate_scene, sample_size

__all__ = ["Background", "Scene", "SceneObject", "SceneWord", "generate_scene", "sample_size"]
