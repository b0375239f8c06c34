"""fetch: download the images of URL-list rows with img2dataset, behind the URL policy.

Runs first, as a Ray task per batch (Ray Data spreads the tasks over the cluster's nodes;
each downloads its batch with `fetch.thread_count` threads). URLs the policy refuses from their
text never reach img2dataset; every other failure comes back from img2dataset as a status and
an error message and becomes a reject with stage `fetch` and a short reason.
"""

from __future__ import annotations

import pyarrow as pa

from finecap.config import PipelineConfig, Resources
from finecap.fetch.downloader import fetch_urls
from finecap.fetch.policy import PolicyViolation, UrlPolicy, check_url
from finecap.fetch.reasons import classify
from finecap.sources.detect import peek_kind
from finecap.stages.base import RejectMarks, Stage, set_column


class FetchStage(Stage):
    name = "fetch"

    @classmethod
    def enabled(cls, config: PipelineConfig) -> bool:
        # Resolved (or explicit) on the driver before any work; a config no build has resolved yet
        # (tests, hashing) is looked at here.
        return peek_kind(config.source) == "urls"

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        return config.fetch.resources

    @classmethod
    def inputs(cls, config: PipelineConfig) -> tuple[str, ...]:
        return ("source",)

    @classmethod
    def semantic(cls, config: PipelineConfig) -> dict:
        # What decides which URLs are refused; timeouts, retries and threads only decide how long.
        cfg = config.fetch
        return {"allow_private_addresses": cfg.allow_private_addresses, "max_bytes": cfg.max_bytes,
                "max_redirects": cfg.max_redirects, "check_content_type": cfg.check_content_type,
                "user_agent_token": cfg.user_agent_token,
                "disallowed_header_directives": list(cfg.disallowed_header_directives)}

    def process(self, batch: pa.Table) -> pa.Table:
        cfg = self.config.fetch
        policy = UrlPolicy.from_config(cfg)
        marks = RejectMarks(self.name, batch.num_rows)
        urls = batch.column("url").to_pylist()
        todo = {}
        for row, url in enumerate(urls):
            try:
                check_url(url, policy)
            except PolicyViolation as exc:
                marks.reject(row, exc.reason, exc.detail)
                continue
            todo[str(row)] = url.strip()
        fetched = fetch_urls(todo, cfg)
        images: list[bytes | None] = [None] * batch.num_rows
        for row_id, result in fetched.items():
            row = int(row_id)
            if result.status == "success" and result.data:
                images[row] = result.data
            elif result.status == "success":
                marks.reject(row, "empty", "the server sent an empty body")
            else:
                marks.reject(row, *classify(result.status, result.error))
        batch = set_column(batch, "image_bytes", pa.array(images, pa.binary()))
        return marks.apply(batch)
