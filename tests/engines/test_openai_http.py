"""The openai engine against a real `vllm serve` on 127.0.0.1 (slow), and against hostile loopback
servers (real sockets) that drip bytes or send huge bodies: every request ends within its deadline."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import threading
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

slow = pytest.mark.slow
SPEC = SamplingSpec(max_tokens=8, temperature=0.0)
IMAGES = [Image.new("RGB", (96, 64), (50 * i, 100, 150)) for i in range(4)]


def _engine(urls, **kw) -> OpenAIEngine:
    return OpenAIEngine("tiny:vlm-a", OpenAIEndpointConfig(base_urls=urls, timeout_s=30, backoff_s=0.05, **kw))


@slow
def test_generates_through_a_real_server_with_provenance(vllm_server):
    engine = _engine([vllm_server["url"]])
    out = engine.generate(IMAGES, ["Describe this image."] * 4, SPEC)
    assert all(g.error is None and g.text and 0 < g.num_tokens <= 8 for g in out)
    assert engine.revision == model_revision(resolve_model("tiny:vlm-a"))


@slow
def test_a_dead_replica_is_skipped_for_a_live_one(vllm_server):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    engine = _engine([dead, vllm_server["url"]], retries=2)
    out = engine.generate(IMAGES * 2, ["Describe this image."] * 8, SPEC)
    assert all(g.error is None for g in out)


@slow
def test_unreachable_endpoint_gives_errors_after_retries_not_a_hang():
    engine = _engine([f"http://127.0.0.1:{free_port()}/v1"], retries=2)
    started = time.monotonic()
    out = engine.generate(IMAGES[:2], ["x"] * 2, SPEC)
    assert time.monotonic() - started < 20
    assert all(g.error and "ConnectionRefusedError" in g.error and g.text == "" for g in out)


@slow
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


@slow
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


# --- hostile loopback servers (real sockets, no model): fast ---------------------------------

HOSTILE = OpenAIEndpointConfig(timeout_s=1.0, retries=1, backoff_s=0.05)
# A dripping server may cost each attempt its whole deadline: 2 attempts x 1 s + backoff, plus slack
# for a loaded 2-core machine. The code as it was never returned at all.
BOUND_S = 8.0
ANSWER = json.dumps({"choices": [{"message": {"content": "a red square"}, "finish_reason": "stop"}],
                     "usage": {"completion_tokens": 3}}).encode()


class HostileServer:
    """A TCP server on 127.0.0.1 that reads each request whole, then lets `behaviour(conn, self)`
    answer it (or not). Counts connections and the bytes the behaviours got out."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.stop = threading.Event()
        self.connections = 0
        self.sent = 0
        self.requests: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            try:
                self.requests.append(_read_request(conn))
                self.behaviour(conn, self)
            except OSError:
                pass  # the client gave up on us: what these tests want

    def send(self, conn, data: bytes):
        conn.sendall(data)
        self.sent += len(data)

    def close(self):
        self.stop.set()
        self.sock.close()


def _read_request(conn) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536) or b""
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        body += conn.recv(65536)
    return head


def _drip(server, conn, data: bytes = b"x"):
    """One byte every 0.1 s until the client hangs up (or the test ends)."""
    while not server.stop.wait(0.1):
        server.send(conn, data)


def drips_headers(conn, server):
    server.send(conn, b"HTTP/1.1 200 OK\r\nX-Slow: ")
    _drip(server, conn)


def drips_body(conn, server):
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
    _drip(server, conn, b" ")


def sends_endless_1xx(conn, server):
    while not server.stop.wait(0.05):
        server.send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")


def sends_huge_valid_json(conn, server):
    """A well-formed answer padded with 64 MiB of whitespace (valid JSON: the old client accepted it)."""
    pad = 64 << 20
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % (len(ANSWER) + pad) + ANSWER)
    chunk = b" " * (1 << 20)
    for _ in range(pad // len(chunk)):
        server.send(conn, chunk)


def sends_endless_chunks(conn, server):
    """A chunked body with no declared length that never ends (paced at ~20 MiB/s)."""
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
    while not server.stop.wait(0.05):
        server.send(conn, chunk)


def answers(conn, server):
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % len(ANSWER) + ANSWER)


def answers_chunked(conn, server):
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (ANSWER[:10], ANSWER[10:]))
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n" + body + b"0\r\n\r\n")


@pytest.fixture
def hostile():
    servers = []

    def start(behaviour):
        servers.append(HostileServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _fast_engine(urls, config=HOSTILE, **kw) -> OpenAIEngine:
    config = dataclasses.replace(config, base_urls=urls, **kw)
    return OpenAIEngine("org/served-model", config)  # not a local model: revision "unknown", no build


def _timed(engine, n=1):
    started = time.monotonic()
    out = engine.generate(IMAGES[:n], ["Describe this image."] * n, SPEC)
    return out, time.monotonic() - started


@pytest.mark.parametrize("behaviour", [drips_headers, drips_body, sends_endless_1xx])
def test_a_dripping_server_costs_at_most_retries_times_the_deadline(hostile, behaviour):
    server = hostile(behaviour)
    out, seconds = _timed(_fast_engine([server.url]), n=2)
    assert seconds < BOUND_S
    assert all(g.error and "deadline" in g.error and g.text == "" for g in out), out
    assert server.connections == 4  # 2 requests x (1 try + 1 retry): the deadline is retried


@pytest.mark.parametrize("behaviour", [sends_huge_valid_json, sends_endless_chunks])
def test_a_huge_body_stops_at_the_cap_and_is_not_retried(hostile, behaviour):
    server = hostile(behaviour)
    out, seconds = _timed(_fast_engine([server.url], max_response_bytes=1 << 20))
    assert seconds < BOUND_S
    assert out[0].error and "max_response_bytes" in out[0].error, out
    assert server.connections == 1  # a server that floods is broken, not busy: no retry
    assert server.sent < 32 << 20  # the client hung up long before the end


def test_the_default_cap_refuses_a_huge_body(hostile):
    server = hostile(sends_huge_valid_json)
    out, seconds = _timed(_fast_engine([server.url]))
    assert out[0].error and "max_response_bytes" in out[0].error, out


@pytest.mark.parametrize("behaviour", [answers, answers_chunked])
def test_a_well_behaved_server_answers_within_the_cap(hostile, behaviour, monkeypatch):
    monkeypatch.setenv("FINECAP_TEST_KEY", "sk-test-123")
    server = hostile(behaviour)
    out, _ = _timed(_fast_engine([server.url], api_key_env="FINECAP_TEST_KEY", max_response_bytes=len(ANSWER)), n=2)
    assert [(g.text, g.num_tokens, g.finish_reason, g.error) for g in out] == [("a red square", 3, "stop", None)] * 2
    assert all(b"POST /v1/chat/completions " in r and b"Bearer sk-test-123" in r for r in server.requests)


def test_a_dripping_replica_gives_way_to_a_live_one(hostile):
    slow, live = hostile(drips_headers), hostile(answers)
    out, seconds = _timed(_fast_engine([slow.url, live.url], retries=2), n=4)
    assert all(g.error is None and g.text == "a red square" for g in out), out
    assert seconds < BOUND_S


def test_a_multi_image_request_sends_its_images_in_place_as_image_url_parts():
    import base64
    import io

    from finecap.prompts import IMAGE_MARKER
    from tests.stages.openai_loopback import LoopbackChat

    chat = LoopbackChat()
    try:
        engine = _engine([chat.url], retries=0)
        prompts = [f"Shared.\n{IMAGE_MARKER}\n{IMAGE_MARKER}\nRegion 0.", "One image."]
        out = engine.generate([(IMAGES[0], IMAGES[1]), IMAGES[3]], prompts, SPEC)
    finally:
        chat.close()
    assert [g.text for g in out] == [chat.caption] * 2 and not any(g.error for g in out)
    parts = {len(b["messages"][0]["content"]): b["messages"][0]["content"] for b in chat.bodies}
    two = parts[4]
    assert [p["type"] for p in two] == ["text", "image_url", "image_url", "text"]
    assert two[0]["text"] == "Shared." and two[3]["text"] == "Region 0."
    colours = [Image.open(io.BytesIO(base64.b64decode(p["image_url"]["url"].split(",", 1)[1]))).getpixel((40, 30))
               for p in two[1:3]]
    assert [tuple(round(c / 10) for c in rgb) for rgb in colours] == [(0, 10, 15), (5, 10, 15)]  # in order
    assert [p["type"] for p in parts[2]] == ["image_url", "text"] and parts[2][1]["text"] == "One image."


def test_an_image_several_requests_share_is_encoded_once_per_call(monkeypatch):
    """The shared region view sends one whole image with every region of its image."""
    from finecap.engines import openai_http
    from finecap.prompts import IMAGE_MARKER
    from tests.stages.openai_loopback import LoopbackChat

    encoded = []
    real = openai_http._data_url
    monkeypatch.setattr(openai_http, "_data_url", lambda image: encoded.append(id(image)) or real(image))
    chat = LoopbackChat()
    try:
        engine = _engine([chat.url], retries=0)
        whole, prompt = IMAGES[0], f"{IMAGE_MARKER}\n{IMAGE_MARKER}\nRegion."
        out = engine.generate([(whole, IMAGES[1]), (whole, IMAGES[2]), (whole, IMAGES[3])], [prompt] * 3, SPEC)
    finally:
        chat.close()
    assert not any(g.error for g in out) and len(chat.bodies) == 3
    assert encoded.count(id(whole)) == 1 and len(encoded) == 4
    urls = {b["messages"][0]["content"][0]["image_url"]["url"] for b in chat.bodies}
    assert len(urls) == 1  # every request still carries the whole image
