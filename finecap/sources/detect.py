"""What `source.uri` points at: image files, URL lists, an img2dataset output or a FineCap output.

`source.kind: auto` (the default) builds from whatever the input is; an explicit kind is checked
against it, so `kind: images` on a URL list fails before any work, in one line naming both, instead
of as "no images under ...". Detection is cheap: it lists names (one listing; planning lists the
input again, so detection at most doubles what planning costs) and reads at most one Parquet footer
or the first line of one text file, never a whole file.

Precedence, most specific first: a FineCap output (`_finecap.json` or `_manifest/*.json`), an
img2dataset output (webdataset `.tar` shards, or Parquet shards holding `url` and image bytes),
then URL lists or image files, whichever there are more of. Image files win a tie: an image folder
often holds caption sidecars (`img.png` + `img.txt`) or a labels.csv; a folder of URL lists rarely
holds images. A `.txt` counts as a URL list only if its first line is a URL (unless
`source.format` says txt), so notes and sidecars are not read as lists.
"""

from __future__ import annotations

import contextlib
import csv
import json
import posixpath
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from finecap import storage
from finecap.sources.img2dataset import IMAGE_EXTENSIONS
from finecap.sources.tables import SUFFIXES, file_format
from finecap.typed_config import ConfigError

# What every build writes into its output (runtime/resume.py; not imported: arrows point down).
MARKER = "_finecap.json"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")
_CHUNK = 1 << 16  # read size for text heads, also the block size asked of object stores
_HEAD_LIMIT = 1 << 20  # a first line longer than this is cut (its column names are then incomplete)
_SHOWN = 8  # names quoted in an error about unrelated files


@dataclass(frozen=True)
class Detected:
    """The kind an input is, and what was seen, as a phrase for messages."""

    kind: str  # images | urls | img2dataset | finecap
    found: str  # e.g. "a folder of 24 image files", "a URL list (parquet file with a 'url' column)"
    also: tuple[str, ...] = ()  # other kinds with files there too: an explicit one of these is accepted
    problem: str | None = None  # the one-line ConfigError building this kind would stop at


@dataclass(frozen=True)
class _Where:
    label: str  # "a folder of" | "a glob matching"
    verb: str  # "holds" | "matches"
    base: str  # names in messages are relative to it


def detect_kind(uri: str, source_cfg) -> Detected:
    """The kind of input at `uri` (a folder, a file or a glob; any fsspec URI); ConfigError naming
    `source.uri` (or `source.url_col` for a URL list without its column) when it is none."""
    found = _look(uri, source_cfg)
    if found.problem:
        raise ConfigError(found.problem)
    return found


def resolve_kind(source_cfg) -> str:
    """The concrete kind to build with: for 'auto' the detected one; an explicit kind is returned
    as it is unless detection is sure the input is another kind (nothing under it fits the explicit
    kind), which is a one-line ConfigError naming `source.kind`."""
    if not source_cfg.uri:
        raise ConfigError("source.uri: no input given (set it in the YAML or pass --input)")
    if source_cfg.kind == "auto":
        return detect_kind(source_cfg.uri, source_cfg).kind
    try:
        found = _look(source_cfg.uri, source_cfg)
    except ConfigError:
        return source_cfg.kind  # nothing recognisable: the source's own plan says what is missing
    if source_cfg.kind == found.kind or source_cfg.kind in found.also:
        return source_cfg.kind
    raise ConfigError(
        f"source.kind: {source_cfg.kind}, but source.uri {source_cfg.uri} is {found.found}; "
        f"set source.kind: {found.kind} or auto"
    )


def peek_kind(source_cfg) -> str | None:
    """The kind without raising, for code that branches on it (FetchStage.enabled): source.kind once
    resolved or explicit, else what detection finds, None if it finds nothing (a config hashed
    before its input exists; a build resolves first and fails there, in one line)."""
    if source_cfg.kind != "auto":
        return source_cfg.kind
    try:
        return _look(source_cfg.uri, source_cfg).kind if source_cfg.uri else None
    except ConfigError:
        return None


def _look(uri: str, cfg) -> Detected:
    fs, root = storage.filesystem(uri)
    if any(ch in root for ch in "*?["):
        base = re.split(r"[*?\[]", root, maxsplit=1)[0].rsplit("/", 1)[0]
        fs.invalidate_cache(base)  # s3fs answers from listings made earlier in this process
        matches = fs.glob(root, detail=True)
        paths = sorted(p for p, info in matches.items() if info.get("type") == "file")
        if not paths:
            raise ConfigError(f"source.uri: {uri} is a glob that matches no files")
        return _classify(fs, paths, cfg, uri, _Where("a glob matching", "matches", base))
    fs.invalidate_cache(root)
    if fs.isdir(root):
        names = storage.list_names(uri)
        if not names:
            raise ConfigError(f"source.uri: {uri} is an empty folder")
        finecap = _finecap_output(uri, names)
        if finecap:
            return finecap
        paths = sorted(fs.find(root))
        if not paths:
            raise ConfigError(f"source.uri: {uri} holds only empty folders ({', '.join(names[:_SHOWN])})")
        return _classify(fs, paths, cfg, uri, _Where("a folder of", "holds", root))
    if fs.isfile(root):
        return _one_file(fs, root, cfg, uri)
    raise ConfigError(f"source.uri: {uri} does not exist")


def _finecap_output(uri: str, names: list[str]) -> Detected | None:
    manifests = storage.list_files(storage.join(uri, "_manifest"), ".json") if "_manifest" in names else []
    if MARKER not in names and not manifests:
        return None
    shards = f"{len(manifests)} committed shard{_s(manifests)}" if manifests else "no committed shards"
    return Detected("finecap", f"a FineCap output ({MARKER + ', ' if MARKER in names else ''}{shards})")


def _classify(fs, paths: list[str], cfg, uri: str, where: _Where) -> Detected:
    """Pick among img2dataset shards, URL lists and image files found under a folder or glob."""
    lower = [p.lower() for p in paths]
    tars = [p for p, low in zip(paths, lower, strict=True) if low.endswith(".tar")]
    stats = [p for p, low in zip(paths, lower, strict=True) if low.endswith("_stats.json")]
    parquets = [p for p, low in zip(paths, lower, strict=True) if low.endswith(".parquet")]
    images = [p for p, low in zip(paths, lower, strict=True) if low.endswith(_image_suffixes(cfg))]
    lists = [p for p, low in zip(paths, lower, strict=True) if low.endswith(_list_suffixes(cfg))]
    image_col = None
    with contextlib.suppress(ConfigError):  # an unreadable Parquet file is no crawl; as a list it says so
        if parquets:
            image_col = _shard_image_column(_parquet_names(fs, parquets[0], posixpath.relpath(parquets[0], where.base)))
    lists, phrase, problem = _credible_lists(fs, lists, cfg, where)
    has = {"img2dataset": bool(tars) or image_col is not None, "urls": bool(lists), "images": bool(images)}
    n_stats = f", {len(stats)} _stats.json" if stats else ""
    if tars and (stats or len(tars) >= len(images)):  # a stray .tar among many images is not a crawl
        kind = "img2dataset"
        found = f"an img2dataset output ({len(tars)} webdataset .tar shard{_s(tars)}{n_stats})"
    elif image_col:
        kind = "img2dataset"
        shards = f"{len(parquets)} parquet shard{_s(parquets)}"
        found = f"an img2dataset output ({shards} with url and {image_col} columns{n_stats})"
    elif images and len(images) >= len(lists):
        kind, found = "images", f"{where.label} {len(images)} image file{_s(images)}"
    elif lists:
        kind, found = "urls", f"{where.label} {len(lists)} URL list{_s(lists)} ({phrase})"
    else:
        shown = [posixpath.relpath(p, where.base) for p in paths[:_SHOWN]]
        more = f", ... ({len(paths)} files)" if len(paths) > _SHOWN else ""
        raise ConfigError(
            f"source.uri: {uri} {where.verb} no images ({', '.join(cfg.extensions)}), URL lists, "
            f"img2dataset shards or FineCap output (found: {', '.join(shown)}{more})"
        )
    also = tuple(k for k in ("images", "urls", "img2dataset") if has[k] and k != kind)
    return Detected(kind, found, also, problem if kind == "urls" else None)


def _credible_lists(fs, lists: list[str], cfg, where: _Where) -> tuple[list[str], str, str | None]:
    """The files that are URL lists, a phrase naming their formats, and the column problem of the
    one probed (the first non-txt list: a column check says more than a first line)."""
    if not lists:
        return [], "", None
    probe = next((p for p in lists if file_format(p, cfg.format) != "txt"), lists[0])
    seen = _probe_list(fs, probe, cfg, posixpath.relpath(probe, where.base))
    if seen is None:  # its first line is not a URL: the .txt files here are notes or sidecars
        lists = [p for p in lists if file_format(p, cfg.format) != "txt"]
        seen = ("", None)
    formats = sorted({file_format(p, cfg.format) for p in lists})
    return lists, ", ".join(formats), seen[1]


def _one_file(fs, path: str, cfg, uri: str) -> Detected:
    """A file named explicitly: a webdataset shard, an img2dataset Parquet shard or a URL list."""
    low = path.lower()
    if low.endswith(".tar"):
        return Detected("img2dataset", "an img2dataset shard (a webdataset .tar file)")
    if cfg.format == "auto" and not low.endswith(SUFFIXES):
        if low.endswith(_image_suffixes(cfg)):
            pattern = posixpath.join(posixpath.dirname(uri), "*" + posixpath.splitext(low)[1])
            raise ConfigError(f"source.uri: {uri} is a single image file; give its folder or a glob "
                              f"({pattern})")
        raise ConfigError(
            f"source.uri: {uri} is not an image folder, URL list (.parquet/.csv/.tsv/.jsonl/.txt, or set "
            f"source.format), img2dataset output or FineCap output"
        )
    name = posixpath.basename(path)
    fmt = file_format(path, cfg.format)
    if fmt == "parquet":
        names = _parquet_names(fs, path, name)
        image_col = _shard_image_column(names)
        if image_col:
            also = ("urls",) if cfg.url_col in names else ()
            found = f"an img2dataset shard (parquet file with url and {image_col} columns)"
            return Detected("img2dataset", found, also)
    seen = _probe_list(fs, path, cfg, name)
    if seen is None:
        raise ConfigError(f"source.uri: {uri} is a .txt file whose first line is not a URL "
                          f"(set source.format: txt to read it as a URL list anyway)")
    return Detected("urls", f"a URL list ({seen[0]})", problem=seen[1])


def _probe_list(fs, path: str, cfg, name: str) -> tuple[str, str | None] | None:
    """(phrase, column problem) for a URL-list file; None for a .txt (format auto) whose first
    line is not a URL."""
    fmt = file_format(path, cfg.format)
    if fmt == "txt":
        if cfg.format == "auto" and not _URL.match(_first_line(fs, path)):
            return None
        return "txt file, one URL a line", None
    try:
        columns = _parquet_names(fs, path, name) if fmt == "parquet" else _text_columns(fs, path, fmt)
    except ConfigError as exc:
        return f"{fmt} file that cannot be read", str(exc)
    if cfg.url_col in columns:
        return f"{fmt} file with a {cfg.url_col!r} column", None
    return (
        f"{fmt} file without a {cfg.url_col!r} column",
        f"source.url_col: column {cfg.url_col!r} is not in {name} "
        f"(its columns: {', '.join(columns[:20]) or 'none'})",
    )


def _text_columns(fs, path: str, fmt: str) -> list[str]:
    line = _first_line(fs, path)
    if fmt == "jsonl":
        try:
            record = json.loads(line)
        except ValueError:
            return []
        return [str(k) for k in record] if isinstance(record, dict) else []
    return next(csv.reader([line], delimiter="\t" if fmt == "tsv" else ","), [])


def _first_line(fs, path: str) -> str:
    """The first non-blank line, reading only as much of the file as it takes (gzip too)."""
    compression = "gzip" if path.lower().endswith(".gz") else None
    data = b""
    with fs.open(path, "rb", block_size=_CHUNK, compression=compression) as f:
        while b"\n" not in data.lstrip() and len(data) < _HEAD_LIMIT:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            data += chunk
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _parquet_names(fs, path: str, name: str) -> list[str]:
    """Column names from the footer alone."""
    try:
        with fs.open(path, "rb") as f:
            return pq.ParquetFile(f).schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"source.uri: {name} is not a readable Parquet file ({reason})") from None


def _shard_image_column(names: list[str]) -> str | None:
    """img2dataset's Parquet output: `url` and the image bytes in a column named by the format."""
    return next((c for c in IMAGE_EXTENSIONS if c in names), None) if "url" in names else None


def _image_suffixes(cfg) -> tuple[str, ...]:
    return tuple(e.lower() for e in cfg.extensions)


def _list_suffixes(cfg) -> tuple[str, ...]:
    return SUFFIXES if cfg.format == "auto" else (f".{cfg.format}", f".{cfg.format}.gz")


def _s(items: list) -> str:
    return "" if len(items) == 1 else "s"
