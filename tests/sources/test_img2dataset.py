import io
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from finecap.config import ConfigError
from finecap.sources import make_source
from tests.fetch.server import HostileServer
from tests.sources.img2dataset_output import write_output


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    """25 URLs (3 failing) crawled by img2dataset into parquet and into webdataset folders."""
    root = tmp_path_factory.mktemp("crawl")
    with HostileServer() as server:
        urls = [server.url(f"img/{i}.png") for i in range(25)]
        for row, kind in ((4, "status404"), (11, "html"), (17, "status500")):
            urls[row] = server.url(f"{kind}/{row}")
        captions = [f"caption {i}" for i in range(25)]
        write_output(root / "parquet", urls, captions, "parquet")
        write_output(root / "webdataset", urls, captions, "webdataset")
    return {"root": root, "urls": urls, "captions": captions}


def _rows(local_config, uri, *overrides):
    source = make_source(local_config("source.kind=img2dataset", *overrides, **{"source.uri": str(uri)}))
    specs = source.plan()
    return specs, [row for spec in specs for row in source.read(spec).to_pylist()]


def test_parquet_output_is_read_without_fetching(crawl, local_config):
    specs, rows = _rows(local_config, crawl["root"] / "parquet", "source.shard_size=8")
    assert [s.num_rows for s in specs] == [8, 8, 8, 1]
    assert len(rows) == 25 and len({r["key"] for r in rows}) == 25
    files = sorted((crawl["root"] / "parquet").glob("*.parquet"))
    originals = {r["key"]: r for f in files for r in pq.read_table(f).to_pylist()}
    for row in rows:
        original = originals[row["key"]]
        assert row["url"] == original["url"] and row["alt_text"] == original["caption"]
        if original["status"] == "success":
            assert row["reject_stage"] is None and row["image_bytes"] == original["jpg"]
            assert Image.open(io.BytesIO(row["image_bytes"])).size == (256, 256)  # img2dataset's resize
        else:
            assert row["image_bytes"] is None and row["reject_stage"] == "fetch"
    reasons = sorted(r["reject_reason"] for r in rows if r["reject_stage"])
    assert reasons == ["http_404", "http_500", "not_an_image"]


def test_webdataset_output_gives_the_downloaded_samples(crawl, local_config):
    specs, rows = _rows(local_config, crawl["root"] / "webdataset", "source.shard_size=5")
    assert len(rows) == 22 and [s.num_rows for s in specs] == [5, 5, 5, 5, 2]
    parquet_rows = {r["key"]: r for r in _rows(local_config, crawl["root"] / "parquet")[1]}
    for row in rows:
        same = parquet_rows[row["key"]]  # same crawl, same keys, same re-encoded bytes
        assert (row["url"], row["alt_text"], row["image_bytes"]) == (same["url"], same["alt_text"], same["image_bytes"])
        assert row["image_path"].endswith(".jpg")


def test_plans_are_deterministic_and_limited(crawl, local_config):
    for folder in ("parquet", "webdataset"):
        first = _rows(local_config, crawl["root"] / folder, "source.shard_size=6", "source.limit=13")
        second = _rows(local_config, crawl["root"] / folder, "source.shard_size=6", "source.limit=13")
        assert first == second and len(first[1]) == 13


def test_a_folder_without_img2dataset_shards_is_a_config_error(tmp_path, local_config, image_folder):
    with pytest.raises(ConfigError, match="no img2dataset shards"):
        _rows(local_config, image_folder)
    pq.write_table(pa.table({"url": ["http://example.com/a.jpg"]}), tmp_path / "00000.parquet")
    with pytest.raises(ConfigError, match="not an img2dataset parquet shard"):
        _rows(local_config, tmp_path)


def _with_repeated_first_sample(src_tar, dst_tar) -> str:
    """img2dataset's tar with its first sample's members written again at the end; the key."""
    with tarfile.open(src_tar) as src, tarfile.open(dst_tar, "w") as dst:
        members = [m for m in src.getmembers() if m.isfile()]
        first = members[0].name.split(".", 1)[0]
        for member in members + [m for m in members if m.name.split(".", 1)[0] == first]:
            dst.addfile(member, src.extractfile(member))
    return first


def test_a_key_repeated_in_a_shard_becomes_a_duplicate_key_reject(crawl, local_config, tmp_path):
    tars, parquets = tmp_path / "webdataset", tmp_path / "parquet"
    tars.mkdir(), parquets.mkdir()
    key = _with_repeated_first_sample(crawl["root"] / "webdataset" / "00000.tar", tars / "00000.tar")
    table = pq.read_table(crawl["root"] / "parquet" / "00000.parquet")
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), parquets / "00000.parquet")
    for folder, first in ((tars, key), (parquets, table.column("key")[0].as_py())):
        specs, rows = _rows(local_config, folder, "source.shard_size=100")
        keys = [r["key"] for r in rows]
        assert len(keys) == len(set(keys)) == sum(s.num_rows for s in specs)
        repeat = rows[-1]
        assert (repeat["key"], repeat["reject_stage"], repeat["reject_reason"]) == (f"{first}#2", "read", "duplicate_key")
        assert repeat["image_bytes"] is None and f"{first!r} repeats" in repeat["reject_detail"]
        kept = next(r for r in rows if r["key"] == first)
        assert kept["reject_stage"] in (None, "fetch") and repeat["url"] == kept["url"]


@pytest.mark.slow
def test_a_tar_with_a_repeated_key_builds_and_validates(crawl, local_config, tmp_path):
    from finecap.runtime.runner import run_build
    from finecap.validate import validate_output

    (tmp_path / "in").mkdir()
    key = _with_repeated_first_sample(crawl["root"] / "webdataset" / "00000.tar", tmp_path / "in" / "00000.tar")
    no_models = [f"{s}.enabled=false" for s in ("caption", "phrases", "detect", "ocr", "regions")]
    config = local_config("source.kind=img2dataset", "source.shard_size=100", "run.num_cpus=2",
                          "filter.min_short_side=64", *no_models, **{"source.uri": str(tmp_path / "in")})
    summary = run_build(config)
    assert summary.shards_committed == 1 and summary.rejects_by_reason.get("read/duplicate_key") == 1
    report = validate_output(config.output.uri)
    assert report.ok, report.problems
    rejects = pq.read_table(f"{config.output.uri}/rejects").to_pylist()
    assert [r["key"] for r in rejects if r["reason"] == "duplicate_key"] == [f"{key}#2"]
