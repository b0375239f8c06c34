import pyarrow as pa
import pytest

from finecap.stages.caption import CaptionStage
from finecap.stages.prepare import PrepareStage
from tests.conftest import png_bytes

pytestmark = pytest.mark.slow


def _prepared(config, n=3):
    blobs = [png_bytes((80 + 10 * i, 60), (30 * i, 120, 90)) for i in range(n)] + [b"junk"]
    batch = pa.table({"key": [f"k{i}" for i in range(n + 1)], "shard": ["part-000000"] * (n + 1),
                      "image_bytes": pa.array(blobs, pa.binary())})
    return PrepareStage(config)(batch)


def test_caption_appends_captions_with_provenance(local_config, vllm_engine):
    config = local_config("caption.captioners.0.max_tokens=10")
    stage = CaptionStage(config, captioner="tiny-a", engine=vllm_engine)
    out = {r["key"]: r for r in stage(_prepared(config)).to_pylist()}
    for key in ("k0", "k1", "k2"):
        (caption,) = out[key]["captions"]
        assert caption["text"] and 0 < caption["num_tokens"] <= 10
        assert caption["model"] == "tiny:vlm-a"
        assert caption["model_revision"] == vllm_engine.revision
        assert caption["prompt_id"] == "global_detailed/v1"
    assert out["k3"]["reject_stage"] == "prepare" and out["k3"]["captions"] is None


def test_second_captioner_appends_rather_than_replaces(local_config, vllm_engine):
    config = local_config(
        "caption.captioners=[{name: a, model: 'tiny:vlm-a', max_tokens: 4}, {name: b, model: 'tiny:vlm-a', max_tokens: 6}]"
    )
    batch = _prepared(config, n=2)
    for name in ("a", "b"):
        batch = CaptionStage(config, captioner=name, engine=vllm_engine)(batch)
    kept = [r for r in batch.to_pylist() if r["reject_stage"] is None]
    assert [len(r["captions"]) for r in kept] == [2, 2]
    assert all(r["captions"][1]["num_tokens"] <= 6 for r in kept)
