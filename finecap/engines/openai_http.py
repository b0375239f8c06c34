"""An OpenAI-compatible HTTP endpoint (`vllm serve` replicas, or any compatible server).

Requests go out concurrently (bounded). Each attempt has a wall-clock deadline (`timeout_s`, for
connect, headers and body together) and a body cap (`max_response_bytes`), enforced at the socket
(http_deadline.py). A failed attempt is retried with backoff on the next replica; a replica that
keeps failing is skipped for a while. A missed deadline is retried (the replica may be busy), a
body over the cap is not (a server that floods is broken, and retrying costs more of the same).
So one request costs at most (retries + 1) x timeout_s plus the backoff, and a request that fails
on every try becomes a `Generation` with `error` set, which the caption stage turns into a reject
row: neither a dead nor a dripping server hangs the run.
"""

from __future__ import annotations

import base64
import http.client
import io
import itertools
import json
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from finecap.config import OpenAIEndpointConfig
from finecap.engines.base import Generation, RequestImage, SamplingSpec, VisionLanguageEngine, interleave
from finecap.engines.http_deadline import DeadlineExceeded, ResponseTooLarge, post
from finecap.models.registry import resolve_model
from finecap.models.revision import model_revision
from finecap.redact import redact_text

log = logging.getLogger(__name__)
_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# A replica with this many failures in a row is skipped for `_COOL_DOWN_S` seconds.
_MAX_CONSECUTIVE_FAILURES = 3
_COOL_DOWN_S = 30.0


class _Replicas:
    """Round-robin over base URLs, skipping ones that keep failing."""

    def __init__(self, urls: list[str]):
        self.urls = [u.rstrip("/") for u in urls]
        self._failures = dict.fromkeys(self.urls, 0)
        self._down_until = dict.fromkeys(self.urls, 0.0)
        self._cycle = itertools.cycle(self.urls)
        self._lock = threading.Lock()

    def pick(self, avoid: set[str] = frozenset()) -> str:
        """The next healthy replica, preferring ones this request has not failed on yet."""
        with self._lock:
            now = time.monotonic()
            healthy = []
            for _ in range(len(self.urls)):
                url = next(self._cycle)
                if self._down_until[url] <= now:
                    if url not in avoid:
                        return url
                    healthy.append(url)
            if healthy:
                return healthy[0]
            return min(self.urls, key=self._down_until.get)  # all cooling down: the soonest back

    def report(self, url: str, ok: bool) -> None:
        with self._lock:
            if ok:
                self._failures[url] = 0
                return
            self._failures[url] += 1
            if self._failures[url] >= _MAX_CONSECUTIVE_FAILURES:
                self._down_until[url] = time.monotonic() + _COOL_DOWN_S


class _RequestFailed(Exception):
    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class OpenAIEngine(VisionLanguageEngine):
    def __init__(self, model: str, config: OpenAIEndpointConfig):
        self.model = model
        self.served_model = config.served_model or model
        self.config = config
        # The server loads the same checkpoint; a local one is hashed, a hub one gives its commit.
        self.revision = model_revision(resolve_model(model))
        self.replicas = _Replicas(config.base_urls)
        self.api_key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        self._pool = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="openai")

    def generate(
        self, images: list[RequestImage], prompts: list[str], sampling: SamplingSpec
    ) -> list[Generation]:
        # One encoding per image object (a shared region view's whole image comes with every region
        # of its image), on the pool, queued before the requests that wait for them.
        urls: dict[int, Future] = {}
        for image in images:
            for picture in (image,) if isinstance(image, Image.Image) else image:
                if id(picture) not in urls:
                    urls[id(picture)] = self._pool.submit(_data_url, picture)
        futures = [
            self._pool.submit(self._one, image, prompt, sampling, urls)
            for image, prompt in zip(images, prompts, strict=True)
        ]
        return [f.result() for f in futures]

    def _one(self, image: RequestImage, prompt: str, sampling: SamplingSpec, urls: dict[int, Future]) -> Generation:
        body = {
            "model": self.served_model,
            "messages": [{"role": "user", "content": [_part(piece, urls) for piece in interleave(image, prompt)]}],
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.logprobs:
            body["logprobs"] = True
        last = "no attempt"
        failed_on: set[str] = set()
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(min(self.config.backoff_s * 2 ** (attempt - 1), 30.0))
            url = self.replicas.pick(avoid=failed_on)
            try:
                generation = self._post(url, body)
            except _RequestFailed as exc:
                self.replicas.report(url, ok=False)
                failed_on.add(url)
                last = f"{url}: {exc}"
                if not exc.retryable:
                    break
                continue
            self.replicas.report(url, ok=True)
            return generation
        log.warning("request failed after %d tries: %s", self.config.retries + 1, last)
        return Generation(text="", num_tokens=0, finish_reason=None, error=last)

    def _post(self, url: str, body: dict) -> Generation:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        cfg = self.config
        try:
            status, data = post(f"{url}/chat/completions", json.dumps(body).encode(), headers,
                                cfg.timeout_s, cfg.max_response_bytes)
        except DeadlineExceeded as exc:
            raise _RequestFailed(f"deadline: {exc} (openai.timeout_s)", retryable=True) from None
        except ResponseTooLarge as exc:
            raise _RequestFailed(f"response {exc}: over openai.max_response_bytes={cfg.max_response_bytes}",
                                 retryable=False) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _RequestFailed(f"{type(exc).__name__}: {exc}", retryable=True) from None
        if status != 200:
            text = redact_text(data[:200].decode("utf-8", "replace"))
            raise _RequestFailed(f"HTTP {status}: {text}", retryable=status in _RETRYABLE_STATUS)
        try:
            payload = json.loads(data)
            choice = payload["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _RequestFailed(f"malformed response: {exc}", retryable=True) from None
        tokens = (payload.get("usage") or {}).get("completion_tokens") or 0
        return Generation(text=text, num_tokens=int(tokens), finish_reason=choice.get("finish_reason"),
                          logprob=_answer_logprob(choice) if body.get("logprobs") else None)


def _answer_logprob(choice: dict) -> float | None:
    """The sum of the chat completion's token log-probabilities (OpenAI's `logprobs.content`);
    None when the server sent none."""
    content = (choice.get("logprobs") or {}).get("content")
    try:
        return float(sum(token["logprob"] for token in content)) if content else None
    except (KeyError, TypeError, ValueError):
        return None


def _part(piece: Image.Image | str, urls: dict[int, Future]) -> dict:
    """One content part: an image as its data URL (`urls`: one `generate` call's encodings by
    image object, alive for the call, so ids are stable), or text."""
    if isinstance(piece, Image.Image):
        return {"type": "image_url", "image_url": {"url": urls[id(piece)].result()}}
    return {"type": "text", "text": piece}


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
