"""`finecap build` end to end on URL lists and img2dataset outputs, on a real embedded Ray.

One Ray session serves the module (the CLI reuses a running Ray), captioning is off to keep
the runs short; fetch, prepare, filter, write, commit and the dedup pass are the real ones.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finecap.cli import main
from tests.conftest import LOCAL_YAML
from tests.fetch.server import FAILURES, HostileServer
from tests.sources.img2dataset_output import write_output

pytestmark = pytest.mark.slow

NO_MODELS = [f"{stage}.enabled=false" for stage in ("caption", "phrases", "detect", "ocr", "regions")]
FETCH = ["fetch.allow_private_addresses=true", "fetch.timeout_s=2", "fetch.retries=0", "fetch.max_bytes=1000000",
         "fetch.resources.concurrency=2", "fetch.resources.batch_size=50", "filter.min_short_side=64"]


def _sets(values):
    return [a for v in values for a in ("--set", v)]


@pytest.fixture(scope="module")
def ray_running():
    from finecap.config import load_config
    from finecap.runtime.ray_session import ray_session

    # Ray's temp dir goes under the system temp dir (its socket paths must stay short).
    with ray_session(load_config(LOCAL_YAML, ["run.num_cpus=2"])):
        yield


@pytest.fixture(scope="module")
def server():
    with HostileServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def url_build(ray_running, server, tmp_path_factory):
    """500 URLs (10% failing in every listed way) plus 20 planted duplicates, built once."""
    root = tmp_path_factory.mktemp("urls")
    urls, expected = server.url_list(500)
    good = [i for i in range(500) if i not in expected][:20]
    copies = {500 + n: i for n, i in enumerate(good)}  # row -> the row it duplicates
    urls += [server.url(f"img/{i}.png?copy") if n < 10 else server.url(f"jpeg/{i}") for n, i in enumerate(good)]
    pq.write_table(pa.table({"url": urls, "caption": [f"alt text {i}" for i in range(len(urls))]}),
                   root / "urls.parquet")
    out = root / "out"
    # 5 dedup partitions: the dedup pass runs its steps as Ray tasks.
    args = ["build", "--config", str(LOCAL_YAML), "--input", str(root / "urls.parquet"), "--output", str(out),
            *_sets(["source.kind=urls", "source.shard_size=50", "dedup.rows_per_partition=100", *NO_MODELS, *FETCH])]
    code = main(args)
    return {"code": code, "out": out, "args": args, "expected": expected, "copies": copies, "n": len(urls)}


def _rows(out):
    return pq.read_table(out / "data").to_pylist(), pq.read_table(out / "rejects").to_pylist()


def test_url_list_builds_and_validates(url_build, capsys):
    assert url_build["code"] == 0
    assert main(["validate", str(url_build["out"])]) == 0
    assert capsys.readouterr().out.startswith("OK:")
    data, rejects = _rows(url_build["out"])
    keys = [r["key"] for r in data + rejects]
    assert len(keys) == len(set(keys)) == url_build["n"]


def test_every_failure_is_a_fetch_reject_with_its_reason(url_build):
    _, rejects = _rows(url_build["out"])
    by_key = {r["key"]: r for r in rejects}
    for row, reason in url_build["expected"].items():
        reject = by_key[f"urls.parquet/{row:09d}"]
        assert (reject["stage"], reject["reason"]) == ("fetch", reason), reject
        assert reject["detail"] and reject["url"].endswith(f"/{row}")
    assert {r["reason"] for r in rejects if r["stage"] == "fetch"} == set(FAILURES.values())
    assert not [r for r in rejects if r["stage"] not in ("fetch", "dedup")]


def test_planted_duplicates_are_removed_naming_the_original(url_build):
    data, rejects = _rows(url_build["out"])
    dedup = {r["key"]: r for r in rejects if r["stage"] == "dedup"}
    expected = {f"urls.parquet/{copy:09d}": f"urls.parquet/{orig:09d}" for copy, orig in url_build["copies"].items()}
    assert set(dedup) == set(expected)
    for key, original in expected.items():
        assert f"duplicate of {original} " in dedup[key]["detail"]
    reasons = sorted(dedup[k]["reason"] for k in expected)
    assert reasons == ["exact_duplicate"] * 10 + ["near_duplicate"] * 10
    state = json.loads((url_build["out"] / "_dedup" / "state.json").read_text())
    assert (state["phase"], state["partitions"]) == ("applied", 5)
    assert len(data) == 500 - len(url_build["expected"])  # every distinct image is kept


def test_alt_text_and_original_bytes_are_kept(url_build, server):
    from tests.fetch.server import image_bytes

    data, _ = _rows(url_build["out"])
    for row in data[:50]:
        index = int(row["key"].rsplit("/", 1)[1])
        assert row["alt_text"] == f"alt text {index}"
        assert row["image"]["bytes"] == image_bytes(index) and row["url"].endswith(f"/img/{index}.png")


def test_a_rerun_fetches_nothing_and_changes_nothing(url_build, server, capsys):
    manifests = {p.name: json.loads(p.read_text()) for p in (url_build["out"] / "_manifest").glob("*.json")}
    before = server.state.connections
    assert main(url_build["args"]) == 0
    out = capsys.readouterr().out
    assert "0/0 shards committed (11 already done)" in out and "dedup: already applied" in out
    assert server.state.connections == before
    after = {p.name: json.loads(p.read_text()) for p in (url_build["out"] / "_manifest").glob("*.json")}
    assert after == manifests


@pytest.mark.parametrize("output_format", ["parquet", "webdataset"])
def test_img2dataset_output_builds_without_fetching(ray_running, server, tmp_path, output_format, capsys):
    urls = [server.url(f"img/{i}.png") for i in range(30)]
    urls[7], urls[19] = server.url("status404/7"), server.url("img/3.png?again")  # a failure, a duplicate
    write_output(tmp_path / "crawl", urls, [f"c{i}" for i in range(30)], output_format)
    before = server.state.connections
    out = tmp_path / "out"
    code = main(["build", "--config", str(LOCAL_YAML), "--input", str(tmp_path / "crawl"), "--output", str(out),
                 *_sets(["source.kind=img2dataset", "source.shard_size=8", "filter.min_short_side=64", *NO_MODELS])])
    assert code == 0 and server.state.connections == before
    assert main(["validate", str(out)]) == 0
    data, rejects = _rows(out)
    reasons = sorted((r["stage"], r["reason"]) for r in rejects)
    assert reasons == ([("dedup", "exact_duplicate")] +
                       ([("fetch", "http_404")] if output_format == "parquet" else []))
    assert len(data) == 28 and all(r["alt_text"].startswith("c") for r in data)
    capsys.readouterr()
