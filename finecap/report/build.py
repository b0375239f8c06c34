"""`finecap report OUTPUT`: statistics, plots, the HTML report, the quality page, the dataset card
and the gallery.

Everything is derived from the committed shards and their manifests (any fsspec URI), and
written under OUTPUT/report/ plus OUTPUT/README.md, so the report can be redone at any time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from finecap import storage
from finecap.report import ReportError
from finecap.report.card import write_card
from finecap.report.gallery import GalleryOptions, write_gallery
from finecap.report.html import write_index
from finecap.report.plots import Plot, write_plots
from finecap.report.quality_page import write_quality
from finecap.report.stats import collect_stats, write_stats


@dataclass
class ReportResult:
    stats: dict
    stats_path: str
    index_path: str
    card_path: str
    gallery_path: str
    quality_path: str
    quality: dict  # quality.json: signal summary and duplicate captions
    plots: list[Plot] = field(default_factory=list)
    gallery_pages: int = 0
    seconds: dict = field(default_factory=dict)  # wall time of each part

    def lines(self) -> list[str]:
        return [
            f"report: {self.index_path} ({len(self.plots)} plots)",
            f"stats: {self.stats_path}",
            f"quality: {self.quality_path} ({self._quality_line()})",
            f"dataset card: {self.card_path}",
            f"gallery: {self.gallery_path} ({self.gallery_pages} pages)" if self.gallery_pages else "gallery: no rows",
            "took " + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items()),
        ]

    def _quality_line(self) -> str:
        signals, duplicates = self.quality["signals"], self.quality["duplicates"]
        rate = f"{duplicates['rate']:.1%}" if duplicates["rate"] is not None else "n/a"
        return (f"{signals['rows_with_signals']} of {signals['rows']} rows with signals, {signals['rows_flagged']} "
                f"flagged; duplicate captions {rate}")


def write_report(output: str, gallery: GalleryOptions | None = None) -> ReportResult:
    timings = {}
    started = time.perf_counter()
    stats = collect_stats(output)
    if not stats["shards"]:
        raise ReportError(f"no committed shards under {output} (no _manifest/*.json)")
    stats_path = write_stats(output, stats)
    timings["stats"] = time.perf_counter() - started
    mark = time.perf_counter()
    plots = write_plots(output, stats)
    timings["plots"] = time.perf_counter() - mark
    mark = time.perf_counter()
    quality_path, quality = write_quality(output)
    timings["quality"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pages = write_gallery(output, gallery or GalleryOptions())
    timings["gallery"] = time.perf_counter() - mark
    index_path = write_index(output, stats, plots, pages)
    card_path = write_card(output, stats)
    timings["total"] = time.perf_counter() - started
    gallery_path = storage.join(output, "report", "gallery", "index.html")
    return ReportResult(stats, stats_path, index_path, card_path, gallery_path, quality_path, quality, plots, pages,
                        {k: round(v, 3) for k, v in timings.items()})
