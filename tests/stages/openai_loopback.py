"""A real OpenAI-compatible chat endpoint on 127.0.0.1 that answers what a test tells it to.

Cheap stand-in for `vllm serve` (which takes ~45 s to start) in stage tests about batches: it
answers every `/chat/completions` request with a fixed caption (with token log-probabilities when
asked), or with HTTP 500, or from a script of answers, and counts the requests, so a test can also say
that a stage made no model call at all.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackChat:
    """`caption` is the text every request gets; `status` 200 answers it, anything else fails."""

    def __init__(self):
        self.caption = "A red square beside a blue circle on a wooden table."
        self.status = 200
        # With a request's `logprobs`: this log-probability for each of `tokens` answer tokens.
        self.token_logprob = -0.1
        self.tokens = 9
        self.requests = 0
        # When set, request i is answered with script[i % len(script)], a (status, caption) pair,
        # instead; `served[j]` counts the requests entry j answered.
        self.script: list[tuple[int, str]] | None = None
        self.served: Counter = Counter()
        self.bodies: list[dict] = []  # every request body received, in arrival order
        self._lock = threading.Lock()
        chat = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's name)
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with chat._lock:
                    chat.requests += 1
                    chat.bodies.append(request)
                    status, caption, n = chat.status, chat.caption, chat.tokens
                    if chat.script:
                        entry = (chat.requests - 1) % len(chat.script)
                        chat.served[entry] += 1
                        status, caption = chat.script[entry]
                if status == 200:
                    choice = {"message": {"role": "assistant", "content": caption}, "finish_reason": "stop"}
                    if request.get("logprobs"):
                        choice["logprobs"] = {"content": [{"token": "t", "logprob": chat.token_logprob}] * n}
                    body = {"choices": [choice], "usage": {"completion_tokens": n}}
                else:
                    body = {"error": {"message": "internal error", "type": "server_error"}}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            # The stages open one connection per request, up to max_concurrency at once: the
            # default listen backlog of 5 overflowed on a loaded machine, and the kernel reset
            # connections the handler never saw (17 of 18 requests counted, once, in make test).
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def captioner(self, name: str, prompt: str = "global_detailed/v1") -> str:
        """A captioner config (YAML flow mapping) whose engine is this endpoint, one try per request."""
        return (f"{{name: {name}, model: 'tiny:vlm-a', engine: openai, prompt: {prompt}, max_tokens: 16, "
                f"openai: {{base_urls: ['{self.url}'], retries: 0, backoff_s: 0.01, timeout_s: 10}}}}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
