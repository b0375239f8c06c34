"""The benchmark files a user points `finecap eval` at, read with one-line errors.

Every path goes through `finecap.storage`, so a local folder and an `s3://` prefix read the
same way. Anything wrong with the user's files (absent, not JSON, an image that is not there or
does not decode) is a `UserError` naming the file: the command ends in one `error:` line and
exit 2. Image presence is checked before the model loads, by listing each image folder once
(one request per folder, not one per image: ImageNet val on S3 is 50,000 images).
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from PIL import Image, UnidentifiedImageError

from finecap import storage
from finecap.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class EvalInputError(UserError):
    """A benchmark file the command was pointed at is absent or malformed."""


def read_text(uri: str, what: str) -> str:
    """The whole file as UTF-8; `what` names the flag in the error (e.g. '--classes')."""
    try:
        data = storage.read_bytes(uri)
    except FileNotFoundError:
        raise EvalInputError(f"{what} {uri}: no such file") from None
    except IsADirectoryError:
        raise EvalInputError(f"{what} {uri}: is a folder, not a file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EvalInputError(f"{what} {uri}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json(uri: str, what: str) -> Any:
    try:
        return json.loads(read_text(uri, what))
    except json.JSONDecodeError as exc:
        raise EvalInputError(f"{what} {uri}: not JSON ({exc.msg}, line {exc.lineno})") from None


def read_jsonl(uri: str, what: str) -> list[dict]:
    """One JSON object a line; blank lines skipped; the error names the line."""
    rows = []
    for number, line in enumerate(read_text(uri, what).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"{what} {uri}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise EvalInputError(f"{what} {uri}, line {number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def read_table(uri: str, what: str) -> list[dict]:
    """Rows of a `.csv` (with a header line) or of JSON Lines (any other name)."""
    if not uri.lower().endswith(".csv"):
        return read_jsonl(uri, what)
    reader = csv.DictReader(io.StringIO(read_text(uri, what)))
    if not reader.fieldnames:
        raise EvalInputError(f"{what} {uri}: empty CSV (a header line is needed)")
    return [dict(row) for row in reader]


def pick_field(row: dict, names: tuple[str, ...], what: str, where: str) -> Any:
    """The first of `names` the row has (benchmarks name the same field differently)."""
    for name in names:
        if row.get(name) not in (None, ""):
            return row[name]
    raise EvalInputError(f"{what} {where}: no {' / '.join(names)} field")


def resolve(root: str | None, path: str) -> str:
    """`path` as given when absolute or a URI, else under `root`."""
    if "://" in path or posixpath.isabs(path) or root is None:
        return path
    return storage.join(root, path)


def subfolders(uri: str, what: str) -> list[str]:
    """Names of the folders directly under `uri`, sorted (ImageNet's class order is this order)."""
    fs, path = storage.filesystem(uri)
    if not fs.exists(path) or not fs.isdir(path):
        raise EvalInputError(f"{what} {uri}: no such folder")
    return sorted(posixpath.basename(e["name"].rstrip("/")) for e in fs.ls(path, detail=True)
                  if e["type"] == "directory")


def image_files(uri: str) -> list[str]:
    """URIs of the image files directly under `uri`, sorted by name."""
    return [f for f in storage.list_files(uri) if f.lower().endswith(IMAGE_SUFFIXES)]


def check_present(uris: Iterable[str], what: str) -> None:
    """Fail before any work if an image is missing, listing each parent folder once."""
    by_folder: dict[str, list[str]] = defaultdict(list)
    for uri in uris:
        by_folder[posixpath.dirname(uri.rstrip("/"))].append(uri)
    missing: list[str] = []
    for folder, wanted in by_folder.items():
        present = set(storage.list_files(folder)) if folder else set()
        missing += [u for u in wanted if u not in present and not _is_file(u)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise EvalInputError(f"{what}: image {missing[0]} not found{more}")


def _is_file(uri: str) -> bool:
    """Fallback for names a listing spells differently (e.g. `./` or symlinked folders)."""
    fs, path = storage.filesystem(uri)
    return fs.isfile(path)


def load_image(uri: str) -> Image.Image:
    """The image as RGB; a file that is gone or does not decode is a one-line error naming it."""
    try:
        data = storage.read_bytes(uri)
    except FileNotFoundError:
        raise EvalInputError(f"image {uri} not found") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise EvalInputError(f"image {uri} does not decode ({exc})") from None


def load_images(uris: Iterable[str]) -> Iterator[Image.Image]:
    """Images one at a time, so a batch holds only its own decoded pixels."""
    return (load_image(u) for u in uris)
