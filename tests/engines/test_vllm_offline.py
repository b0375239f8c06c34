import pytest
from PIL import Image

from finecap.engines.base import SamplingSpec
from finecap.models.registry import resolve_model
from finecap.models.revision import model_revision

pytestmark = pytest.mark.slow


def test_engine_generates_one_caption_per_image_in_order(vllm_engine):
    images = [Image.new("RGB", (112, 80), (40 * i, 90, 200)) for i in range(3)]
    spec = SamplingSpec(max_tokens=12, temperature=0.0)
    first = vllm_engine.generate(images, ["Describe this image."] * 3, spec)
    again = vllm_engine.generate(images[::-1], ["Describe this image."] * 3, spec)
    assert len(first) == 3
    assert all(0 < g.num_tokens <= 12 and g.finish_reason in ("stop", "length") for g in first)
    assert [g.text for g in again] == [g.text for g in first][::-1]  # greedy: same image, same text


def test_engine_names_its_model_and_revision(vllm_engine):
    assert vllm_engine.model == "tiny:vlm-a"
    assert vllm_engine.revision == model_revision(resolve_model("tiny:vlm-a"))
    assert vllm_engine.revision.startswith("sha256:")
