"""report/gallery/: static HTML pages of sample images with their boxes and captions.

The sample is evenly spaced over all written rows (deterministic, so reruns show the same
images); only shards holding a sampled row are read with their image bytes, one at a time.
Each sampled image is written beside the pages as a JPEG no larger than `thumb_side`, which any
browser shows (the originals may be TIFF or BMP) and keeps the gallery small. No server needed.

Rows the quality stage flagged carry a badge naming the flags. `sort_by` shows, instead of the
even sample, the `size` rows of the whole output that score lowest on one row signal
(quality/summary.py's names), or highest as "-NAME" (repetition, ocr_ignored: higher is worse),
worst first: finding the bad rows is what sorting is for. Only the `signals` column of each shard
is read to choose them. Rows without the signal (not applicable, or written before schema v3)
are shown last, and only when fewer rows have it than the gallery holds.
"""

from __future__ import annotations

import heapq
import io
from dataclasses import dataclass

import pyarrow.compute as pc

from finecap import storage
from finecap.dataset import committed_shards, read_data
from finecap.image_ops import decode_rgb
from finecap.quality.summary import row_signal_names
from finecap.report import ReportError
from finecap.report.gallery_html import Sample, page_name, render_page

COLUMNS = ["key", "image", "width", "height", "captions", "regions", "signals"]


@dataclass(frozen=True)
class GalleryOptions:
    size: int = 96  # sampled images in all
    per_page: int = 24
    thumb_side: int = 768
    sort_by: str | None = None  # a row signal, "-NAME" for highest first; None: sample order

    def __post_init__(self) -> None:
        for name in ("size", "per_page", "thumb_side"):
            if getattr(self, name) < 1:
                raise ReportError(f"gallery {name} must be at least 1, got {getattr(self, name)}")
        if self.sort_by is not None and self.sort_by.removeprefix("-") not in row_signal_names():
            raise ReportError(f"gallery sort_by: unknown signal {self.sort_by!r}; choose one of "
                              f"{', '.join(row_signal_names())} (-NAME for highest first)")


def order_samples(samples: list[Sample], sort_by: str | None) -> list[Sample]:
    """`samples` by the signal `sort_by` (see the module doc); stable, so ties keep sample order."""
    if sort_by is None:
        return samples
    name, sign = sort_by.removeprefix("-"), -1 if sort_by.startswith("-") else 1

    def key(sample: Sample) -> tuple[bool, float]:
        value = (sample.signals or {}).get(name)
        return (True, 0.0) if value is None else (False, sign * value)

    return sorted(samples, key=key)


def sample_positions(rows_per_shard: dict[str, int], size: int) -> dict[str, list[int]]:
    """Row positions to show, by shard: `size` positions evenly spaced over all rows in shard order."""
    total = sum(rows_per_shard.values())
    wanted = range(total) if total <= size else sorted({i * total // size for i in range(size)})
    picks: dict[str, list[int]] = {}
    wanted_iter = iter(wanted)
    position = next(wanted_iter, None)
    start = 0
    for shard in sorted(rows_per_shard):
        end = start + rows_per_shard[shard]
        while position is not None and position < end:
            picks.setdefault(shard, []).append(position - start)
            position = next(wanted_iter, None)
        start = end
    return picks


def worst_positions(shards: dict, sort_by: str, size: int) -> dict[str, list[int]]:
    """Row positions, by shard, of the `size` rows ranked first by `sort_by` (see the module doc)."""
    name, sign = sort_by.removeprefix("-"), -1.0 if sort_by.startswith("-") else 1.0
    ranked: list[tuple[bool, float, str, int]] = []  # (no value, signed value, shard, position)
    for shard_id, shard in sorted(shards.items()):
        signals = read_data(shard, ["signals"]).column("signals")
        values = pc.struct_field(signals, name).to_pylist() if signals.null_count < len(signals) else \
            [None] * len(signals)
        keys = [(v is None, 0.0 if v is None else sign * v, shard_id, i) for i, v in enumerate(values)]
        ranked = heapq.nsmallest(size, ranked + keys)
    picks: dict[str, list[int]] = {}
    for _, _, shard_id, position in sorted(ranked, key=lambda k: (k[2], k[3])):
        picks.setdefault(shard_id, []).append(position)
    return picks


def _thumbnail(data: bytes, width: int, height: int, side: int) -> bytes:
    image = decode_rgb(data, width * height)
    image.thumbnail((side, side))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()


def collect_samples(output: str, options: GalleryOptions, gallery_dir: str) -> list[Sample]:
    """Read the sampled rows and write their images under `gallery_dir`/images."""
    shards = {s.shard_id: s for s in committed_shards(output)}
    if options.sort_by:
        picks = worst_positions(shards, options.sort_by, options.size)
    else:
        picks = sample_positions({i: s.manifest["rows_written"] for i, s in shards.items()}, options.size)
    samples = []
    for shard, positions in sorted(picks.items()):
        rows = read_data(shards[shard], COLUMNS).take(positions).to_pylist()
        for row in rows:
            name = f"images/{len(samples) + 1:05d}.jpg"
            thumb = _thumbnail(row["image"]["bytes"], row["width"], row["height"], options.thumb_side)
            storage.write_bytes(storage.join(gallery_dir, name), thumb)
            samples.append(Sample(row["key"], shard, row["width"], row["height"], name,
                                  row["captions"] or [], row["regions"] or [], row["signals"]))
    return order_samples(samples, options.sort_by)


def write_gallery(output: str, options: GalleryOptions, title: str = "FineCap gallery") -> int:
    """Write the gallery pages; return how many (0 when the output has no rows)."""
    gallery_dir = storage.join(output, "report", "gallery")
    storage.remove(gallery_dir, recursive=True)  # no stale pages or images from an earlier report
    samples = collect_samples(output, options, gallery_dir)
    pages = -(-len(samples) // options.per_page)
    for page in range(1, pages + 1):
        start = (page - 1) * options.per_page
        html = render_page(title, page, pages, start + 1, samples[start : start + options.per_page], options.sort_by)
        storage.write_bytes(storage.join(gallery_dir, page_name(page)), html.encode())
    return pages
