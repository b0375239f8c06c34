"""fetch.max_seconds bounds a URL end to end, through the fetch stage and img2dataset.

Each hostile server keeps every single socket read busy (so a per-read timeout never fires)
or never finishes; the fetch must still give its reject within max_seconds plus a margin.
timeout_s is set far above max_seconds so that only the wall-clock deadline can stop them.
"""

import time

import pytest

from finecap.fetch.deadline import DeadlineExceeded, bounded, current
from finecap.stages.fetch import FetchStage
from tests.fetch.server import HOSTILE, HostileServer, image_bytes, url_batch

MAX_SECONDS = 2.0
MARGIN = 3.0  # thread start-up, img2dataset's shard writing; generous so it never flakes
# retries=2 and max_redirects=20: the deadline covers every attempt and every redirect hop (one
# deadline per attempt would take 3 x MAX_SECONDS, past the bound).
HOSTILE_CONFIG = ("fetch.allow_private_addresses=true", f"fetch.max_seconds={MAX_SECONDS}", "fetch.timeout_s=10",
                  "fetch.retries=2", "fetch.max_redirects=20", "fetch.thread_count=16")


@pytest.fixture(scope="module")
def server():
    import img2dataset.downloader  # noqa: F401 - its ~8 s import must not count as fetch time

    with HostileServer() as srv:
        yield srv


def _fetch(config, urls):
    started = time.monotonic()
    rows = FetchStage(config)(url_batch(urls)).to_pylist()
    return rows, time.monotonic() - started


def test_a_batch_of_hostile_servers_still_delivers_its_good_images(server, local_config):
    """Every hostile kind (dripped headers, endless 1xx, dripped body, slow redirect hops, a TLS
    listener that never answers the ClientHello) at once, as a crawl meets them: each ends as its
    reject within max_seconds (they run concurrently, so the batch's time bounds each), and the
    good rows arrive."""
    hostile = [server.url(f"{kind}/2") for kind in sorted(HOSTILE)] + [server.stall_url()]
    good = [server.url(f"img/{i}.png") for i in range(3)]
    rows, elapsed = _fetch(local_config(*HOSTILE_CONFIG), hostile + good)
    assert elapsed < MAX_SECONDS + MARGIN, f"{elapsed:.1f} s"
    assert [r["reject_reason"] for r in rows[: len(hostile)]] == [*(HOSTILE[k] for k in sorted(HOSTILE)), "timeout"]
    assert [r["image_bytes"] for r in rows[len(hostile):]] == [image_bytes(i) for i in range(3)]


def test_an_inner_deadline_never_extends_an_outer_one():
    with bounded(1.0) as outer:
        with bounded(30.0) as inner:
            assert inner is outer and current(99.0) is outer
        with bounded(0.0) as shorter:
            assert shorter.at < outer.at
            with pytest.raises(DeadlineExceeded, match="^slow_response: the URL took over fetch.max_seconds=0"):
                shorter.timeout(5.0)
        assert 0 < outer.timeout(0.25) <= 0.25 < outer.timeout() <= 1.0
    assert current(7.0).seconds == 7.0  # outside any fetch: a fresh one
