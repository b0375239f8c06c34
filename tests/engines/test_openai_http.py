"""The openai engine against a real `vllm serve` on 127.0.0.1 (no fakes)."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest
from PIL import Image

from finecap.config import OpenAIEndpointConfig
from finecap.engines.base import SamplingSpec
from finecap.engines.openai_http import OpenAIEngine
from finecap.models.registry import resolve_model
from finecap.models.revision import model_revision
from tests.engines.conftest import free_port, stop_server

pytestmark = pytest.mark.slow
SPEC = SamplingSpec(max_tokens=8, temperature=0.0)
IMAGES = [Image.new("RGB", (96, 64), (50 * i, 100, 150)) for i in range(4)]


def _engine(urls, **kw) -> OpenAIEngine:
    return OpenAIEngine("tiny:vlm-a", OpenAIEndpointConfig(base_urls=urls, timeout_s=30, backoff_s=0.05, **kw))


def test_generates_through_a_real_server_with_provenance(vllm_server):
    engine = _engine([vllm_server["url"]])
    out = engine.generate(IMAGES, ["Describe this image."] * 4, SPEC)
    assert all(g.error is None and g.text and 0 < g.num_tokens <= 8 for g in out)
    assert engine.revision == model_revision(resolve_model("tiny:vlm-a"))


def test_a_dead_replica_is_skipped_for_a_live_one(vllm_server):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    engine = _engine([dead, vllm_server["url"]], retries=2)
    out = engine.generate(IMAGES * 2, ["Describe this image."] * 8, SPEC)
    assert all(g.error is None for g in out)


def test_unreachable_endpoint_gives_errors_after_retries_not_a_hang():
    engine = _engine([f"http://127.0.0.1:{free_port()}/v1"], retries=2)
    started = time.monotonic()
    out = engine.generate(IMAGES[:2], ["x"] * 2, SPEC)
    assert time.monotonic() - started < 20
    assert all(g.error and "ConnectionError" in g.error and g.text == "" for g in out)


def test_pipeline_builds_the_sample_through_the_server(vllm_server, tmp_path):
    """`finecap build` with an openai captioner on the real embedded Ray, then validate. One of
    the two replicas is dead for the whole run: the live one captions every image."""
    import subprocess
    import sys

    from finecap.samples.source import write_sample_source
    from tests.conftest import LOCAL_YAML, NO_LOCAL_CAPTIONS, REPO

    source = write_sample_source(tmp_path / "src", n_scenes=8, seed=5, include_photos=False)
    captioner = (
        f"caption.captioners=[{{name: srv, model: 'tiny:vlm-a', engine: openai, max_tokens: 12, "
        f"openai: {{base_urls: ['http://127.0.0.1:{free_port()}/v1', '{vllm_server['url']}'], "
        "backoff_s: 0.05}}]"
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "finecap.cli", "build", "--config", str(LOCAL_YAML), "--input", str(source),
           "--output", str(out), "--set", captioner, "--set", "caption.assign=all"]
    for item in NO_LOCAL_CAPTIONS:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = subprocess.run([sys.executable, "-m", "finecap.cli", "validate", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and check.stdout.startswith("OK:"), check.stdout
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "data").to_pylist()
    rejects = pq.read_table(out / "rejects").to_pylist()
    assert len(rows) + len(rejects) == 8 and rows
    assert all(r["captions"][0]["model"] == "tiny:vlm-a" for r in rows)
    # The live replica answered every request (random weights may still write an empty caption).
    assert [r for r in rejects if r["reason"] == "engine_error"] == []


def test_server_stopped_mid_run_yields_reject_rows(vllm_server, local_config):
    """Batch 1 is captioned; the server dies; batch 2 becomes caption/engine_error rejects."""
    from finecap.stages.caption import CaptionStage
    from finecap.stages.prepare import PrepareStage
    from tests.conftest import png_bytes

    config = local_config(
        "caption.assign=all", "caption.hygiene.min_chars=1", "caption.hygiene.check_repetition=false",
        "caption.hygiene.check_truncation=false",
        f"caption.captioners=[{{name: srv, model: 'tiny:vlm-a', engine: openai, max_tokens: 6, "
        f"openai: {{base_urls: ['{vllm_server['url']}'], retries: 2, backoff_s: 0.05, timeout_s: 10}}}}]",
    )
    stage = CaptionStage(config, captioner="srv")

    def batch(prefix):
        blobs = [png_bytes((70 + 5 * i, 50)) for i in range(3)]
        table = pa.table({"key": [f"{prefix}{i}" for i in range(3)], "shard": ["part-000000"] * 3,
                          "image_bytes": pa.array(blobs, pa.binary())})
        return PrepareStage(config)(table)

    first = stage(batch("a")).to_pylist()
    assert all(r["reject_stage"] is None and r["captions"][0]["model"] == "tiny:vlm-a" for r in first)
    stop_server(vllm_server["proc"])
    started = time.monotonic()
    second = stage(batch("b")).to_pylist()
    assert time.monotonic() - started < 30
    assert [(r["reject_stage"], r["reject_reason"]) for r in second] == [("caption", "engine_error")] * 3
