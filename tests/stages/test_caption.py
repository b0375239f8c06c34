import pyarrow as pa
import pytest

from finecap.stages.caption import CaptionStage
from finecap.stages.prepare import PrepareStage
from tests.conftest import png_bytes

pytestmark = pytest.mark.slow
LOOSE = ["caption.hygiene.check_repetition=false", "caption.hygiene.check_truncation=false"]
TWO = "caption.captioners=[{name: a, model: 'tiny:vlm-a', max_tokens: %d}, {name: b, model: 'tiny:vlm-a', max_tokens: %d}]"


def _prepared(config, n=3):
    blobs = [png_bytes((80 + 10 * i, 60), (30 * i, 120, 90)) for i in range(n)] + [b"junk"]
    batch = pa.table({"key": [f"k{i}" for i in range(n + 1)], "shard": ["part-000000"] * (n + 1),
                      "image_bytes": pa.array(blobs, pa.binary())})
    return PrepareStage(config)(batch)


def _run(config, engine, batch):
    for captioner in config.caption.captioners:
        batch = CaptionStage(config, captioner=captioner.name, engine=engine)(batch)
    return {r["key"]: r for r in batch.to_pylist()}


def test_caption_appends_captions_with_provenance(local_config, vllm_engine):
    config = local_config("caption.captioners.0.max_tokens=10", "caption.assign=all",
                          "caption.hygiene.min_chars=1", *LOOSE)
    stage = CaptionStage(config, captioner="tiny-a", engine=vllm_engine)
    out = {r["key"]: r for r in stage(_prepared(config)).to_pylist()}
    for key in ("k0", "k1", "k2"):
        (caption,) = out[key]["captions"]
        assert caption["text"] and 0 < caption["num_tokens"] <= 10
        assert caption["model"] == "tiny:vlm-a"
        assert caption["model_revision"] == vllm_engine.revision
        assert caption["prompt_id"] == "global_detailed/v1"
    assert out["k3"]["reject_stage"] == "prepare" and out["k3"]["captions"] is None


def test_all_rule_gives_every_captioner(local_config, vllm_engine):
    config = local_config(TWO % (4, 6), "caption.assign=all", "caption.hygiene.min_chars=1", *LOOSE)
    out = _run(config, vllm_engine, _prepared(config, n=2))
    assert [len(out[k]["captions"]) for k in ("k0", "k1")] == [2, 2]
    assert out["k0"]["captions"][1]["num_tokens"] <= 6


def test_weighted_rule_gives_one_caption_per_image(local_config, vllm_engine):
    config = local_config(TWO % (4, 4), "caption.assign=weighted", "caption.hygiene.min_chars=1", *LOOSE)
    out = _run(config, vllm_engine, _prepared(config, n=3))
    assert all(len(out[k]["captions"]) == 1 and out[k]["reject_stage"] is None for k in ("k0", "k1", "k2"))


def test_degenerate_caption_is_retried_by_the_next_captioner(local_config, vllm_engine):
    # a writes one token (too short), b writes 40: every row ends with b's caption only.
    config = local_config(TWO % (1, 40), "caption.assign=weighted", "caption.hygiene.min_chars=12", *LOOSE)
    config.caption.captioners[0].weight = 1.0
    config.caption.captioners[1].weight = 0.0  # b is never assigned: it only retries
    out = _run(config, vllm_engine, _prepared(config, n=2))
    for key in ("k0", "k1"):
        assert out[key]["reject_stage"] is None, out[key]["reject_detail"]
        (caption,) = out[key]["captions"]
        assert caption["num_tokens"] > 1 and len(caption["text"]) >= 12
        assert out[key]["_caption_tried"] == ["a", "b"] and out[key]["_caption_failed"] == []


def test_rows_without_a_usable_caption_are_rejected_with_the_reason(local_config, vllm_engine):
    config = local_config(TWO % (2, 2), "caption.assign=weighted", "caption.hygiene.min_chars=500", *LOOSE)
    config.caption.captioners[1].weight = 0.0  # every row goes to a first, then b retries
    out = _run(config, vllm_engine, _prepared(config, n=2))
    for key in ("k0", "k1"):
        assert (out[key]["reject_stage"], out[key]["reject_reason"]) == ("caption", "too_short")
        assert "a: too_short" in out[key]["reject_detail"] and "b: too_short" in out[key]["reject_detail"]


def test_reject_mode_rejects_at_the_first_degenerate_caption(local_config, vllm_engine):
    config = local_config(TWO % (2, 2), "caption.assign=all", "caption.hygiene.min_chars=500",
                          "caption.hygiene.on_degenerate=reject", *LOOSE)
    batch = _prepared(config, n=1)
    out = {r["key"]: r for r in CaptionStage(config, captioner="a", engine=vllm_engine)(batch).to_pylist()}
    assert (out["k0"]["reject_stage"], out["k0"]["reject_reason"]) == ("caption", "too_short")
    assert out["k0"]["reject_detail"].startswith("a: ")
