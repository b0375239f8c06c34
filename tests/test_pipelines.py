"""Every shipped pipeline YAML loads and validates (the GPU one is checked, not run)."""

from pathlib import Path

import pytest

from finecap.config import load_config
from finecap.stages.fingerprints import config_hash
from tests.conftest import REPO

PIPELINES = sorted(p for p in (REPO / "pipelines").glob("*.yaml") if not p.name.startswith("train-"))


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_pipeline_loads(path: Path):
    config = load_config(path, _trained_model_stand_in(path))
    assert config_hash(config).startswith("sha256:")


def _trained_model_stand_in(path: Path) -> list[str]:
    """The data engine's pipeline names `tiny:finevit-vl`, which the loop points at the model it has
    just trained; hashing the name itself would train one (minutes), so a built tiny model stands in."""
    from finecap.data_engine.loop import trained_model_overrides

    if path.name != "data-engine.yaml":
        return []
    return [f"{o.split('=', 1)[0]}=tiny:vlm-a" for o in trained_model_overrides(path, Path("model"))]


def test_cluster_pipeline_has_the_papers_settings():
    config = load_config(REPO / "pipelines" / "cluster-gpu.yaml")
    assert (config.detect.box_threshold, config.detect.nms_iou) == (0.3, 0.7)
    assert config.detect.model == "IDEA-Research/grounding-dino-base"
    assert (config.filter.min_short_side, config.filter.max_aspect_ratio) == (448, 3.0)
    big = config.caption.captioners[0]
    assert big.model == "Qwen/Qwen3-VL-32B-Instruct" and big.engine_options.tensor_parallel_size == 2
    assert config.caption.resources.num_gpus == 2 and config.ocr.enabled and config.regions.enabled
