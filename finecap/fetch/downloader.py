"""Download a batch of URLs with img2dataset's per-shard downloader, inside the calling process.

Why not `img2dataset.download()`: every call spawns a logger process and a worker pool, and
each spawned child re-imports img2dataset (torch, wandb, albumentations: ~10 s here), which
also makes the caller need a `__main__` guard that Ray workers do not have. Its distributors
only call `Downloader(...)((shard_id, arrow_file))` per shard; FineCap does the same inside the
Ray task that holds the batch, so Ray is the distributor (tasks spread over the cluster's nodes)
and img2dataset still does the downloading: threads, retries, X-Robots-Tag, its statuses.

img2dataset opens URLs with `urllib.request.urlopen(request, timeout=timeout)` and reads the
body with `.read()`; for the length of a call its downloader module sees an `urllib` whose
`urlopen` is FineCap's policy opener (finecap/fetch/policy.py), so the URL policy applies to
every connection img2dataset makes, redirects included. Its `timeout` (fetch.timeout_s) is only
a per-socket-operation limit; the wall-clock bound is fetch.max_seconds per URL: the module's
`download_image_with_retry` (one row: all its attempts) runs under one deadline
(finecap/fetch/deadline.py), which every socket operation of every attempt and hop obeys.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import types
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from finecap.config import FetchConfig
from finecap.fetch.deadline import bounded
from finecap.fetch.policy import UrlPolicy, build_opener

# img2dataset imports albumentations (checks for updates online on import) and wandb.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

_PATCH_LOCK = threading.Lock()  # one img2dataset call per process at a time owns the seam
_KEY = "finecap_row"


@dataclass(frozen=True)
class Fetched:
    status: str  # img2dataset's: success | failed_to_download | failed_to_resize | missing
    error: str | None
    data: bytes | None


class FetchError(RuntimeError):
    """img2dataset failed as a whole (not per URL): an infrastructure failure Ray may retry."""


def fetch_urls(urls: dict[str, str], cfg: FetchConfig) -> dict[str, Fetched]:
    """Download `{row_id: url}` with img2dataset; every row id gets a result."""
    if not urls:
        return {}
    from img2dataset.downloader import Downloader
    from img2dataset.resizer import Resizer
    from img2dataset.writer import ParquetSampleWriter

    with tempfile.TemporaryDirectory(prefix="finecap-fetch-") as tmp:
        shard_file = os.path.join(tmp, "input.arrow")
        table = pa.table({_KEY: list(urls), "url": list(urls.values())})
        with pa.OSFile(shard_file, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        downloader = Downloader(
            sample_writer_class=ParquetSampleWriter,
            # Keep the bytes exactly as served: prepare decodes (bounded) and keeps the original.
            resizer=Resizer(image_size=0, resize_mode="no", resize_only_if_bigger=False, disable_all_reencoding=True),
            thread_count=max(1, min(cfg.thread_count, len(urls))),
            save_caption=False,
            extract_exif=False,
            output_folder=tmp,
            column_list=[_KEY, "url"],
            timeout=cfg.timeout_s,
            number_sample_per_shard=len(urls),
            oom_shard_count=5,
            compute_hash=None,
            verify_hash_type=None,
            encode_format="jpg",
            retries=cfg.retries,
            user_agent_token=cfg.user_agent_token,
            disallowed_header_directives=cfg.disallowed_header_directives or None,
        )
        with _policy_urlopen(UrlPolicy.from_config(cfg)):
            ok, _ = downloader((0, shard_file))
        written = os.path.join(tmp, "00000.parquet")
        if not ok or not os.path.exists(written):
            raise FetchError("img2dataset failed on the whole batch (see the worker log)")
        out = pq.read_table(written, columns=[_KEY, "status", "error_message", "jpg"]).to_pylist()
    results = {r[_KEY]: Fetched(r["status"], r["error_message"], r["jpg"]) for r in out}
    missing = Fetched("missing", "img2dataset wrote no row for this URL", None)
    return {row_id: results.get(row_id, missing) for row_id in urls}


@contextlib.contextmanager
def _policy_urlopen(policy: UrlPolicy) -> Iterator[None]:
    """Give img2dataset's downloader module an `urllib` whose urlopen enforces `policy`, and a
    per-row download function that runs all of a row's attempts under one deadline."""
    import img2dataset.downloader as module

    if getattr(module, "urllib", None) is not urllib:
        raise FetchError("img2dataset.downloader no longer uses urllib: the URL policy cannot be applied")
    per_row = getattr(module, "download_image_with_retry", None)
    if not callable(per_row):
        raise FetchError("img2dataset.downloader has no download_image_with_retry: fetch.max_seconds cannot hold")
    opener = build_opener(policy)

    def urlopen(request, timeout):
        return opener.open(request, timeout=timeout)

    def download_within_deadline(*args, **kwargs):
        with bounded(policy.max_seconds):
            return per_row(*args, **kwargs)

    shim = types.SimpleNamespace(request=types.SimpleNamespace(Request=urllib.request.Request, urlopen=urlopen))
    with _PATCH_LOCK:
        module.urllib, module.download_image_with_retry = shim, download_within_deadline
        try:
            yield
        finally:
            module.urllib, module.download_image_with_retry = urllib, per_row
