import pyarrow as pa
import pytest

from finecap.stages.fetch import FetchStage
from tests.fetch.server import FAILURES, HostileServer, image_bytes, url_batch

OPEN = ("fetch.allow_private_addresses=true", "fetch.timeout_s=2", "fetch.retries=0", "fetch.max_bytes=1000000",
        "fetch.thread_count=16")


@pytest.fixture(scope="module")
def server():
    with HostileServer() as srv:
        yield srv


def test_every_failure_kind_is_a_fetch_reject_with_its_reason(server, local_config):
    good = [server.url(f"img/{i}.png") for i in range(5)]
    bad = {server.url(f"{kind}/9"): reason for kind, reason in FAILURES.items()}
    bad.update({"ftp://127.0.0.1/a.png": "url_policy", "not a url": "bad_url", None: "bad_url"})
    out = FetchStage(local_config(*OPEN))(url_batch(good + list(bad)))
    rows = {r["url"]: r for r in out.to_pylist()}
    assert out.num_rows == len(good) + len(bad)
    for i, url in enumerate(good):
        assert rows[url]["reject_stage"] is None and rows[url]["image_bytes"] == image_bytes(i)
    for url, reason in bad.items():
        row = rows[url]
        assert (row["reject_stage"], row["reject_reason"]) == ("fetch", reason), row["reject_detail"]
        assert row["reject_detail"] and row["image_bytes"] is None
    assert out.column("_seconds_fetch").null_count == 0


def test_no_request_reaches_a_private_host_when_disallowed(local_config):
    """Through the real img2dataset downloader: names and literals, none gets a connection."""
    with HostileServer() as server:
        urls = [server.url(f"img/{i}.png") for i in range(4)]
        urls += [server.url(f"img/{i}.png", host="localhost") for i in range(4)]
        urls += [server.url("loop/1", host="localhost")]
        out = FetchStage(local_config("fetch.timeout_s=1"))(url_batch(urls))
        assert server.state.connections == 0
    assert set(out.column("reject_reason").to_pylist()) == {"url_policy"}
    assert all("fetch.allow_private_addresses" in d for d in out.column("reject_detail").to_pylist())


def test_retries_come_from_the_config(server, local_config):
    without = FetchStage(local_config(*OPEN))(url_batch([server.url("flaky/11")])).to_pylist()[0]
    assert without["reject_reason"] == "http_503"
    retried = FetchStage(local_config(*OPEN, "fetch.retries=1"))(url_batch([server.url("flaky/12")])).to_pylist()[0]
    assert retried["reject_stage"] is None and retried["image_bytes"] == image_bytes(12)


def test_size_limit_and_content_type_check_come_from_the_config(server, local_config):
    urls = [server.url("img/3.png"), server.url("html/3")]
    strict = FetchStage(local_config(*OPEN, "fetch.max_bytes=100"))(url_batch(urls)).to_pylist()
    assert [r["reject_reason"] for r in strict] == ["too_large", "wrong_content_type"]
    lax = FetchStage(local_config(*OPEN, "fetch.check_content_type=false"))(url_batch(urls)).to_pylist()
    assert lax[0]["reject_stage"] is None
    assert lax[1]["reject_stage"] is None and lax[1]["image_bytes"].startswith(b"<html>")  # prepare rejects it


def test_rows_rejected_upstream_are_not_fetched(server, local_config):
    batch = url_batch([server.url("img/1.png"), server.url("img/2.png")])
    batch = batch.append_column("reject_stage", pa.array(["read", None], pa.string()))
    before = len(server.state.paths)
    out = {r["key"]: r for r in FetchStage(local_config(*OPEN))(batch).to_pylist()}
    assert (out["k000"]["reject_stage"], out["k001"]["reject_stage"]) == ("read", None)
    assert len(server.state.paths) - before == 1


def test_a_batch_whose_every_url_fails_still_reaches_the_writer(server, local_config, tmp_path):
    """Later stages skip a batch with no live rows, so its columns stay missing; write copes."""
    from finecap.stages.filters import FilterStage
    from finecap.stages.prepare import PrepareStage
    from finecap.stages.write import PieceWriter

    config = local_config(*OPEN, **{"output.uri": str(tmp_path / "out")})
    batch = url_batch([server.url("status404/1"), server.url("status500/2")])
    for column in ("source", "alt_text", "image_path"):
        batch = batch.append_column(column, pa.nulls(2, pa.string()))
    rows = FilterStage(config)(PrepareStage(config)(FetchStage(config)(batch)))
    assert "width" not in rows.column_names
    piece = PieceWriter(config, "sha256:test")(rows).to_pylist()[0]
    assert (piece["rows_written"], piece["rows_rejected"]) == (0, 2)
