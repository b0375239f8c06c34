"""report/gallery/: static HTML pages of sample images with their boxes and captions.

The sample is evenly spaced over all written rows (deterministic, so reruns show the same
images); only shards holding a sampled row are read with their image bytes, one at a time.
Each sampled image is written beside the pages as a JPEG no larger than `thumb_side`, which any
browser shows (the originals may be TIFF or BMP) and keeps the gallery small. No server needed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from finecap import storage
from finecap.dataset import committed_shards, read_data
from finecap.image_ops import decode_rgb
from finecap.report import ReportError
from finecap.report.gallery_html import Sample, page_name, render_page

COLUMNS = ["key", "image", "width", "height", "captions", "regions"]


@dataclass(frozen=True)
class GalleryOptions:
    size: int = 96  # sampled images in all
    per_page: int = 24
    thumb_side: int = 768

    def __post_init__(self) -> None:
        for name in ("size", "per_page", "thumb_side"):
            if getattr(self, name) < 1:
                raise ReportError(f"gallery {name} must be at least 1, got {getattr(self, name)}")


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


def _thumbnail(data: bytes, width: int, height: int, side: int) -> bytes:
    image = decode_rgb(data, width * height)
    image.thumbnail((side, side))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()


def collect_samples(output: str, options: GalleryOptions, gallery_dir: str) -> list[Sample]:
    """Read the sampled rows and write their images under `gallery_dir`/images."""
    shards = {s.shard_id: s for s in committed_shards(output)}
    picks = sample_positions({i: s.manifest["rows_written"] for i, s in shards.items()}, options.size)
    samples = []
    for shard, positions in sorted(picks.items()):
        rows = read_data(shards[shard], COLUMNS).take(positions).to_pylist()
        for row in rows:
            name = f"images/{len(samples) + 1:05d}.jpg"
            thumb = _thumbnail(row["image"]["bytes"], row["width"], row["height"], options.thumb_side)
            storage.write_bytes(storage.join(gallery_dir, name), thumb)
            samples.append(Sample(row["key"], shard, row["width"], row["height"], name,
                                  row["captions"] or [], row["regions"] or []))
    return samples


def write_gallery(output: str, options: GalleryOptions, title: str = "FineCap gallery") -> int:
    """Write the gallery pages; return how many (0 when the output has no rows)."""
    gallery_dir = storage.join(output, "report", "gallery")
    storage.remove(gallery_dir, recursive=True)  # no stale pages or images from an earlier report
    samples = collect_samples(output, options, gallery_dir)
    pages = -(-len(samples) // options.per_page)
    for page in range(1, pages + 1):
        start = (page - 1) * options.per_page
        html = render_page(title, page, pages, start + 1, samples[start : start + options.per_page])
        storage.write_bytes(storage.join(gallery_dir, page_name(page)), html.encode())
    return pages
