import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finecap.config import ConfigError
from finecap.sources import make_source

URLS = [f"http://example.com/img/{i}.jpg" for i in range(23)]
CAPTIONS = [f"a photo, number {i}" for i in range(23)]


def _write(path, fmt, url_col="url", caption_col="caption"):
    if fmt == "parquet":
        pq.write_table(pa.table({url_col: URLS, caption_col: CAPTIONS, "extra": list(range(23))}), path,
                       row_group_size=5)
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        lines = [f"{url_col}{sep}{caption_col}"] + [f'{u}{sep}"{c}"' for u, c in zip(URLS, CAPTIONS, strict=True)]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({url_col: u, caption_col: c}) + "\n" for u, c in zip(URLS, CAPTIONS, strict=True)))
    elif fmt == "txt":
        path.write_text("\n".join(URLS[:10]) + "\n\n" + "\n".join(URLS[10:]) + "\n")
    return path


def _rows(cfg):
    source = make_source(cfg)
    return [row for spec in source.plan() for row in source.read(spec).to_pylist()]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "tsv", "jsonl", "txt"])
def test_every_format_gives_the_same_rows(fmt, tmp_path, local_config):
    path = _write(tmp_path / f"urls.{fmt}", fmt)
    rows = _rows(local_config("source.kind=urls", "source.shard_size=4", **{"source.uri": str(path)}))
    assert [r["url"] for r in rows] == URLS
    assert [r["alt_text"] for r in rows] == (CAPTIONS if fmt != "txt" else [None] * 23)
    assert [r["key"] for r in rows] == [f"urls.{fmt}/{i:09d}" for i in range(23)]
    assert all(r["image_bytes"] is None and r["reject_stage"] is None for r in rows)
    assert {r["shard"] for r in rows} == {f"part-{i:06d}" for i in range(6)}


def test_gzipped_lists_and_custom_column_names(tmp_path, local_config):
    plain = _write(tmp_path / "x.csv", "csv", url_col="image_url", caption_col="alt")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "urls.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    rows = _rows(local_config("source.kind=urls", "source.url_col=image_url", "source.caption_col=alt",
                              **{"source.uri": str(tmp_path / "lists")}))
    assert [r["url"] for r in rows] == URLS and [r["alt_text"] for r in rows] == CAPTIONS


def test_missing_url_column_names_the_key(tmp_path, local_config):
    path = _write(tmp_path / "urls.parquet", "parquet", url_col="link")
    with pytest.raises(ConfigError, match=r"source.url_col: column 'url' is not in urls.parquet \(its columns: link"):
        make_source(local_config("source.kind=urls", **{"source.uri": str(path)})).plan()


def test_missing_caption_column_gives_no_alt_text(tmp_path, local_config):
    path = tmp_path / "urls.jsonl"
    path.write_text("".join(json.dumps({"url": u}) + "\n" for u in URLS))
    rows = _rows(local_config("source.kind=urls", **{"source.uri": str(path)}))
    assert len(rows) == 23 and all(r["alt_text"] is None for r in rows)


def test_plan_is_deterministic_across_files_and_shard_sizes(tmp_path, local_config):
    folder = tmp_path / "lists"
    folder.mkdir()
    _write(folder / "b.parquet", "parquet")
    _write(folder / "a.csv", "csv")
    (folder / "notes.md").write_text("not a list")

    def keys(*overrides):
        cfg = local_config("source.kind=urls", *overrides, **{"source.uri": str(folder)})
        first, second = make_source(cfg).plan(), make_source(cfg).plan()
        assert first == second
        return [r["key"] for r in _rows(cfg)], first

    small, plan = keys("source.shard_size=7")
    large, _ = keys("source.shard_size=50")
    assert small == large == [f"a.csv/{i:09d}" for i in range(23)] + [f"b.parquet/{i:09d}" for i in range(23)]
    assert [s.num_rows for s in plan] == [7] * 6 + [4]
    assert plan[3].items == [  # a shard that spans the two files
        {"path": str(folder / "a.csv"), "name": "a.csv", "start": 21, "stop": 23},
        {"path": str(folder / "b.parquet"), "name": "b.parquet", "start": 0, "stop": 5},
    ]
    limited, _ = keys("source.shard_size=7", "source.limit=25")
    assert limited == small[:25]


def test_glob_input_and_format_override(tmp_path, local_config):
    _write(tmp_path / "one.list", "txt")
    with pytest.raises(ConfigError, match="source.uri: no URL lists"):
        make_source(local_config("source.kind=urls", **{"source.uri": str(tmp_path / "*.list")})).plan()
    rows = _rows(local_config("source.kind=urls", "source.format=txt", **{"source.uri": str(tmp_path / "one.list")}))
    assert [r["url"] for r in rows] == URLS


def test_misspelt_source_keys_fail_at_load(local_config):
    with pytest.raises(ConfigError, match=r"unknown key 'source.url_column' \(did you mean 'source.url_col'\?\)"):
        local_config("source.url_column=link")
    with pytest.raises(ConfigError, match="source.kind: must be one of"):
        local_config("source.kind=url")
    with pytest.raises(ConfigError, match="source.format: must be one of"):
        local_config("source.format=xlsx")
