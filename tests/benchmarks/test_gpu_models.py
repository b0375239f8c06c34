"""benchmarks/gpu_models.py: the stage II FLOPs formula against torch's own count, shapes from the
training config, the peak table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.gpu_models import QUICK_STEP, StepModel, peak_tflops, step_flops, step_inputs, step_shape
from finecap.typed_config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_step_flops_match_torch_counting_the_forward():
    shape = dataclasses.replace(QUICK_STEP, resolution=112, text_length=8)  # 64 image tokens
    model, batch = StepModel(shape), 4
    inputs = step_inputs(shape, batch, "cpu", torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    counted = counter.get_total_flops() / batch
    ours = step_flops(model, shape, batch) / 3  # per sample, forward only
    # Attention (4 T^2 width per layer) by hand: torch counts CPU SDPA on some versions, not others.
    attention = (4 * model.vision.config.layers * 64**2 * model.vision.width
                 + 4 * model.text.config.num_hidden_layers * 8**2 * model.text.config.hidden_size)
    assert ours == pytest.approx(counted + attention, rel=1e-9) or ours == pytest.approx(counted, rel=1e-9)


def test_shapes_come_from_the_training_config():
    shape = step_shape(REPO / "pipelines" / "train-finevit.yaml", 1)
    assert (shape.vision, shape.resolution, shape.text_length, shape.embed_dim) == ("finevit-0.86b", 448, 256, 1024)
    assert shape.image_tokens == 1024 and shape.text["hidden_size"] == 1152
    with pytest.raises(ConfigError, match="stage2.phases"):
        step_shape(REPO / "pipelines" / "train-finevit.yaml", 2)
    with pytest.raises(ConfigError, match="model.text.model: no built-in shape for 'tiny'"):
        step_shape(REPO / "pipelines" / "train-tiny.yaml", 0)


@pytest.mark.parametrize(("name", "peak"), [("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0),
                                            ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L40S", 362.1),
                                            ("NVIDIA L4", 121.0), ("NVIDIA A10G", None), ("cpu", None)])
def test_peak_by_device_name(name, peak):
    assert peak_tflops(name) == peak
