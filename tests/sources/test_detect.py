"""source.kind auto: each kind of input is told apart; explicit kinds are checked against the input."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finecap import storage
from finecap.config import ConfigError
from finecap.sources import detect_kind, make_source, resolve_kind, resolve_source
from finecap.sources.img2dataset import Img2DatasetSource
from finecap.sources.urls import UrlListSource
from finecap.stages.fetch import FetchStage
from finecap.stages.prepare import PrepareStage
from tests.conftest import png_bytes
from tests.test_storage_s3 import prefix, s3_env  # noqa: F401 (fixtures: a moto S3 server on loopback)

URLS = [f"http://example.com/{i}.jpg" for i in range(5)]


def _cfg(local_config, uri, *overrides):
    return local_config(*overrides, **{"source.uri": str(uri)})


def _detect(local_config, uri, *overrides):
    cfg = _cfg(local_config, uri, *overrides)
    return detect_kind(cfg.source.uri, cfg.source)


def _url_parquet(path, url_col="url"):
    pq.write_table(pa.table({url_col: URLS, "caption": [f"c{i}" for i in range(5)]}), path)
    return path


def _img2dataset_parquet(folder, shards=2):
    """The layout of img2dataset's parquet output (tests/sources/img2dataset_output.py writes a real
    one in ~40 s): NNNNN.parquet with url and the image bytes in `jpg`, and NNNNN_stats.json."""
    folder.mkdir()
    for shard in range(shards):
        keys = [f"{shard:05d}{i:04d}" for i in range(3)]
        pq.write_table(pa.table({"caption": ["c"] * 3, "url": URLS[:3], "key": keys, "status": ["success"] * 3,
                                 "error_message": [None] * 3, "jpg": [png_bytes()] * 3}),
                       folder / f"{shard:05d}.parquet")
        (folder / f"{shard:05d}_stats.json").write_text(json.dumps({"count": 3, "successes": 3}))
    return folder


def _img2dataset_webdataset(folder, shards=2):
    """img2dataset's webdataset output: NNNNN.tar (KEY.jpg, KEY.txt, KEY.json) beside a metadata
    NNNNN.parquet that has `url` but no image bytes, and NNNNN_stats.json."""
    folder.mkdir()
    for shard in range(shards):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as tar:
            for i in range(2):
                key = f"{shard:05d}{i:04d}"
                for ext, data in (("jpg", png_bytes()), ("txt", b"a caption"), ("json", json.dumps({"key": key}).encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        pq.write_table(pa.table({"caption": ["c"] * 2, "url": URLS[:2], "key": ["a", "b"], "status": ["success"] * 2}),
                       folder / f"{shard:05d}.parquet")
        (folder / f"{shard:05d}_stats.json").write_text("{}")
    return folder


def _finecap_output(folder, shards=3, marker=True):
    """What a build leaves: the marker, committed manifests, data, and a report with PNG plots."""
    for sub in ("_manifest", "data", "report"):
        (folder / sub).mkdir(parents=True)
    if marker:
        (folder / "_finecap.json").write_text(json.dumps({"format": "finecap-output"}))
    for shard in range(shards):
        (folder / "_manifest" / f"part-{shard:06d}.json").write_text(json.dumps({"shard": f"part-{shard:06d}"}))
        _url_parquet(folder / "data" / f"part-{shard:06d}.parquet")
    (folder / "report" / "sizes.png").write_bytes(png_bytes())
    return folder


# --- each kind ---


def test_image_folders_and_globs(local_config, image_folder):
    found = _detect(local_config, image_folder)
    # notes.txt does not start with a URL: it is a note, not a URL list
    assert (found.kind, found.found, found.also) == ("images", "a folder of 11 image files", ())
    found = _detect(local_config, image_folder / "sub" / "*.png")
    assert (found.kind, found.found) == ("images", "a glob matching 4 image files")


@pytest.mark.parametrize("name", ["urls.parquet", "urls.csv", "urls.tsv", "urls.jsonl", "urls.txt", "urls.csv.gz"])
def test_url_list_files_of_every_format(name, tmp_path, local_config):
    path = tmp_path / name
    fmt = name.split(".")[1]
    if fmt == "parquet":
        _url_parquet(path)
    else:
        sep = "\t" if fmt == "tsv" else ","
        text = {"csv": f"url{sep}caption\n" + "".join(f"{u}{sep}c\n" for u in URLS),
                "tsv": f"url{sep}caption\n" + "".join(f"{u}{sep}c\n" for u in URLS),
                "jsonl": "".join(json.dumps({"caption": "c", "url": u}) + "\n" for u in URLS),
                "txt": "\n" + "\n".join(URLS) + "\n"}[fmt]
        path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    found = _detect(local_config, path)
    column = "one URL a line" if fmt == "txt" else "with a 'url' column"
    assert (found.kind, found.found) == ("urls", f"a URL list ({fmt} file{',' if fmt == 'txt' else ''} {column})")


def test_folders_and_globs_of_url_lists(tmp_path, local_config):
    folder = tmp_path / "lists"
    (folder / "more").mkdir(parents=True)
    _url_parquet(folder / "b.parquet")
    (folder / "more" / "a.csv").write_text("url,caption\n" + "".join(f"{u},c\n" for u in URLS))
    (folder / "README.md").write_text("where these lists came from")
    found = _detect(local_config, folder)
    assert (found.kind, found.found) == ("urls", "a folder of 2 URL lists (csv, parquet)")
    assert _detect(local_config, folder / "*.parquet").found == "a glob matching 1 URL list (parquet)"
    # a custom URL column is what is checked
    (folder / "b.parquet").unlink()
    (folder / "more" / "a.csv").write_text("link\n" + "\n".join(URLS) + "\n")
    assert _detect(local_config, folder, "source.url_col=link").kind == "urls"


def test_url_list_without_its_column_names_the_key(tmp_path, local_config):
    path = _url_parquet(tmp_path / "urls.parquet", url_col="link")
    with pytest.raises(ConfigError, match=r"^source.url_col: column 'url' is not in urls.parquet "
                                          r"\(its columns: link, caption\)$"):
        _detect(local_config, path)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "more.jsonl").write_text(json.dumps({"link": URLS[0]}) + "\n")
    with pytest.raises(ConfigError, match=r"source.url_col: column 'url' is not in more.jsonl \(its columns: link\)"):
        _detect(local_config, tmp_path / "lists")


def test_img2dataset_outputs(tmp_path, local_config):
    found = _detect(local_config, _img2dataset_parquet(tmp_path / "pq"))
    assert found.kind == "img2dataset"
    assert found.found == "an img2dataset output (2 parquet shards with url and jpg columns, 2 _stats.json)"
    assert found.also == ("urls",)  # its url column could be fetched again, on purpose
    found = _detect(local_config, _img2dataset_webdataset(tmp_path / "wds"))
    assert (found.kind, found.found) == ("img2dataset", "an img2dataset output (2 webdataset .tar shards, 2 _stats.json)")
    assert _detect(local_config, tmp_path / "wds" / "00001.tar").found == "an img2dataset shard (a webdataset .tar file)"
    assert _detect(local_config, tmp_path / "pq" / "00000.parquet").kind == "img2dataset"
    # and the reader auto picks plans them
    source = make_source(_cfg(local_config, tmp_path / "wds"))
    assert isinstance(source, Img2DatasetSource) and sum(s.num_rows for s in source.plan()) == 4


def test_a_stray_tar_or_broken_parquet_among_images_is_not_a_crawl(image_folder, local_config):
    (image_folder / "backup.tar").write_bytes(b"")
    found = _detect(local_config, image_folder)
    assert (found.kind, found.also) == ("images", ("img2dataset",))
    (image_folder / "backup.tar").unlink()
    (image_folder / "broken.parquet").write_bytes(b"not parquet")
    assert _detect(local_config, image_folder).kind == "images"
    with pytest.raises(ConfigError, match=r"^source.uri: broken.parquet is not a readable Parquet file \(Parquet magic"):
        _detect(local_config, image_folder / "broken.parquet")


def test_finecap_outputs(tmp_path, local_config):
    found = _detect(local_config, _finecap_output(tmp_path / "out"))
    assert (found.kind, found.found, found.also) == ("finecap", "a FineCap output (_finecap.json, 3 committed shards)", ())
    older = _finecap_output(tmp_path / "old", shards=1, marker=False)  # built before the marker existed
    assert _detect(local_config, older).found == "a FineCap output (1 committed shard)"
    with pytest.raises(ValueError, match="is a FineCap output: a build from a FineCap output reads it through the rebuild"):
        make_source(_cfg(local_config, older))


def test_more_url_lists_than_images_is_a_url_folder_and_a_tie_is_images(tmp_path, local_config):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        _url_parquet(folder / f"{name}.parquet")
    (folder / "logo.png").write_bytes(png_bytes())
    assert (_detect(local_config, folder).kind, _detect(local_config, folder).also) == ("urls", ("images",))
    (folder / "icon.png").write_bytes(png_bytes())
    assert _detect(local_config, folder).kind == "images"


# --- nothing recognisable ---


def test_empty_missing_and_unrelated_inputs(tmp_path, local_config):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^source.uri: \S+/empty is an empty folder$"):
        _detect(local_config, tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"^source.uri: \S+/nope does not exist$"):
        _detect(local_config, tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"^source.uri: \S+/\*\.webp is a glob that matches no files$"):
        _detect(local_config, tmp_path / "*.webp")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("shopping list: eggs\nhttp://example.com/not-first-line.jpg\n")
    (junk / "b.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"^source.uri: \S+/junk holds no images \(.jpg, .jpeg, .png.*\), URL lists, "
                                          r"img2dataset shards or FineCap output \(found: a.txt, b.json\)$"):
        _detect(local_config, junk)
    with pytest.raises(ConfigError, match=r"matches no images .*\(found: a.txt\)$"):
        _detect(local_config, junk / "*.txt")
    with pytest.raises(ConfigError, match=r"a.txt is a .txt file whose first line is not a URL"):
        _detect(local_config, junk / "a.txt")


def test_a_single_image_file_points_at_a_glob(image_folder, local_config):
    with pytest.raises(ConfigError, match=r"^source.uri: \S+/img01.png is a single image file; give its folder "
                                          r"or a glob \(\S+/images/\*.png\)$"):
        _detect(local_config, image_folder / "img01.png")


# --- explicit kinds ---


def test_an_explicit_kind_that_is_not_what_the_input_is_names_both(tmp_path, image_folder, local_config):
    urls = _url_parquet(tmp_path / "urls.parquet")
    with pytest.raises(ConfigError, match=rf"^source.kind: images, but source.uri {urls} is a URL list \(parquet file "
                                          r"with a 'url' column\); set source.kind: urls or auto$"):
        resolve_kind(_cfg(local_config, urls, "source.kind=images").source)
    with pytest.raises(ConfigError, match=r"^source.kind: img2dataset, but source.uri \S+ is a folder of 11 image files; "
                                          r"set source.kind: images or auto$"):
        resolve_kind(_cfg(local_config, image_folder, "source.kind=img2dataset").source)
    out = _finecap_output(tmp_path / "out")
    for kind in ("images", "urls"):  # its data has a url column and its report PNGs: still an output
        with pytest.raises(ConfigError, match=rf"^source.kind: {kind}, but source.uri \S+ is a FineCap output"):
            resolve_kind(_cfg(local_config, out, f"source.kind={kind}").source)
    with pytest.raises(ConfigError, match=r"^source.kind: urls, but source.uri \S+ is a folder of 11 image files"):
        resolve_kind(_cfg(local_config, image_folder, "source.kind=urls").source)


def test_explicit_kinds_that_fit_are_kept(tmp_path, image_folder, local_config):
    def kind(uri, *overrides):
        return resolve_kind(_cfg(local_config, uri, *overrides).source)

    assert kind(image_folder / "sub" / "*.png", "source.kind=images") == "images"
    (tmp_path / "urls.txt").write_text("\n".join(URLS) + "\n")
    assert kind(tmp_path / "urls.txt", "source.kind=urls") == "urls"
    (tmp_path / "one.list").write_text("\n".join(URLS) + "\n")  # any name, with source.format
    assert kind(tmp_path / "one.list", "source.kind=urls", "source.format=txt") == "urls"
    assert kind(_img2dataset_webdataset(tmp_path / "wds"), "source.kind=img2dataset") == "img2dataset"
    assert kind(_img2dataset_parquet(tmp_path / "pq"), "source.kind=urls") == "urls"  # fetch the crawl again
    assert kind(_finecap_output(tmp_path / "out"), "source.kind=finecap") == "finecap"
    # nothing recognisable: the source's own plan says what is missing, as before
    assert kind(tmp_path / "*.list", "source.kind=urls") == "urls"
    with pytest.raises(ConfigError, match="source.uri: no URL lists"):
        make_source(_cfg(local_config, tmp_path / "*.list", "source.kind=urls")).plan()


def test_resolve_source_writes_the_kind_into_the_config(tmp_path, local_config):
    cfg = _cfg(local_config, _url_parquet(tmp_path / "urls.parquet"))
    assert cfg.source.kind == "auto"
    assert resolve_source(cfg) is cfg and cfg.source.kind == "urls"
    assert isinstance(make_source(cfg), UrlListSource)
    with pytest.raises(ConfigError, match="^source.uri: no input given"):
        resolve_kind(_cfg(local_config, "", "source.kind=images").source)


def test_fetch_and_prepare_follow_the_detected_kind(tmp_path, image_folder, local_config):
    urls = _cfg(local_config, _url_parquet(tmp_path / "urls.parquet"))
    images = _cfg(local_config, image_folder)
    assert FetchStage.enabled(urls) and PrepareStage.inputs(urls) == ("fetch",)
    assert not FetchStage.enabled(images) and PrepareStage.inputs(images) == ("source",)
    # explicit kinds decide without looking; an input that is not there yet fetches nothing
    assert FetchStage.enabled(_cfg(local_config, tmp_path / "later.parquet", "source.kind=urls"))
    assert not FetchStage.enabled(_cfg(local_config, tmp_path / "later.parquet"))


def test_detection_reads_s3_the_same_way(local_config, request):
    root = request.getfixturevalue("prefix")  # a fresh prefix in a moto bucket (tests/test_storage_s3.py)
    for name in ("a.png", "sub/b.png"):
        storage.write_bytes(f"{root}/images/{name}", png_bytes())
    buffer = io.BytesIO()
    pq.write_table(pa.table({"url": URLS}), buffer)
    storage.write_bytes(f"{root}/lists/urls.parquet", buffer.getvalue())
    storage.write_bytes(f"{root}/out/_finecap.json", b"{}")
    storage.write_bytes(f"{root}/out/_manifest/part-000000.json", b"{}")
    assert _detect(local_config, f"{root}/images").found == "a folder of 2 image files"
    assert _detect(local_config, f"{root}/images/*.png").found == "a glob matching 1 image file"
    assert _detect(local_config, f"{root}/lists/urls.parquet").found == "a URL list (parquet file with a 'url' column)"
    assert _detect(local_config, f"{root}/lists").kind == "urls"
    assert _detect(local_config, f"{root}/out").found == "a FineCap output (_finecap.json, 1 committed shard)"
