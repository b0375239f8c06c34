"""Fetch throughput of one fetch task: img2dataset's downloader behind the URL policy, on loopback.

A server process on 127.0.0.1 serves distinct ~640x480 JPEGs (~60 KB); this process runs the
fetch stage on batches of URLs, as one Ray task would (after a warm-up batch, so img2dataset's
import is not counted; it is reported separately). Loopback hides network latency, so this is
the CPU cost per image of the downloader itself; on the web the rate per task is bound by
latency and `fetch.thread_count`.

    python benchmarks/fetch_rate.py [--urls 2000] [--batch 500] [--threads 32]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _image(index: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(index)
    grid = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(grid).resize((640, 480), Image.Resampling.BILINEAR).save(out, format="JPEG", quality=85)
    return out.getvalue()


def _serve(port_queue) -> None:
    images = [_image(i) for i in range(64)]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            body = images[int(self.path.rsplit("/", 1)[1]) % len(images)]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 512
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    import pyarrow as pa

    from finecap.config import load_config
    from finecap.stages.fetch import FetchStage

    queue = multiprocessing.get_context("spawn").Queue()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(queue,), daemon=True)
    server.start()
    port = queue.get(timeout=60)
    config = load_config(Path(__file__).resolve().parent.parent / "pipelines" / "local.yaml",
                         ["fetch.allow_private_addresses=true", f"fetch.thread_count={args.threads}"])
    stage = FetchStage(config)

    def batch(start: int, n: int) -> pa.Table:
        urls = [f"http://127.0.0.1:{port}/img/{i}" for i in range(start, start + n)]
        return pa.table({"key": [str(i) for i in range(n)], "shard": ["part-000000"] * n, "url": urls})

    try:
        started = time.perf_counter()
        stage(batch(0, 16))  # warm-up: imports img2dataset
        warm_up = time.perf_counter() - started
        fetched = nbytes = 0
        started = time.perf_counter()
        for start in range(0, args.urls, args.batch):
            out = stage(batch(start, min(args.batch, args.urls - start)))
            fetched += out.column("reject_stage").null_count
            nbytes += sum(len(b) for b in out.column("image_bytes").to_pylist() if b)
        seconds = time.perf_counter() - started
    finally:
        server.terminate()
    figures = {
        "urls": args.urls, "fetched": fetched, "batch": args.batch, "threads": args.threads,
        "seconds": round(seconds, 2), "images_per_second": round(fetched / seconds, 1),
        "mbytes_per_second": round(nbytes / seconds / 1e6, 2), "first_call_seconds": round(warm_up, 1),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    import json

    print(json.dumps(figures, indent=2))
    if not args.no_record:
        from benchmarks.record import record

        headline = (f"{figures['images_per_second']} images/s ({figures['mbytes_per_second']} MB/s) per fetch task "
                    f"on loopback; first call {figures['first_call_seconds']} s (img2dataset import)")
        record("fetch_rate", figures, headline, "downloader CPU cost per image; import once per worker")


if __name__ == "__main__":
    main()
