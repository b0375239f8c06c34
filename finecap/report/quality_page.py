"""report/quality.html and report/quality.json: the quality signals and duplicate captions of an output.

Drawn from two dataset-level passes (quality/summary.py, quality/duplicates.py), both reading only
the `captions` and `signals` columns shard by shard; their results are kept as quality.json, so
the page (and a later diff) can be redone without the shards. Per-captioner rows join the two on
the caption's provenance (model, revision, prompt). An output built before schema v3, or without
the quality stage, still gets the page: caption duplicates and distinct-n need only the text, and
the page says that the signals were not measured.
"""

from __future__ import annotations

import json
from html import escape

from finecap import storage
from finecap.dataset import CommittedShard
from finecap.dataset.versions import latest_version
from finecap.quality.duplicates import CAPTIONER, duplicate_captions
from finecap.quality.summary import signal_summary
from finecap.report.html import CSS, table
from finecap.report.plots import Plot, render_quality_plots, write_plots
from finecap.report.quality_truth import read_ground_truth, render_ground_truth

PAGE = "quality.html"


def collect_quality(output: str, shards: list[CommittedShard] | None = None) -> dict:
    version = latest_version(output)
    return {"output": output, "signals": signal_summary(output, shards), "duplicates": duplicate_captions(output, shards),
            "version": version["version"] if version else None}


def _share(part: int, whole: int) -> str:
    return f"{part:,} ({part / whole:.1%})" if whole else f"{part:,}"


def _summary(quality: dict) -> list[list]:
    signals, duplicates = quality["signals"], quality["duplicates"]
    return [
        ["rows", signals["rows"]],
        ["rows with signals", _share(signals["rows_with_signals"], signals["rows"])],
        ["rows flagged", _share(signals["rows_flagged"], signals["rows_with_signals"])],
        ["global captions", duplicates["captions"]],
        ["distinct caption texts", duplicates["distinct"]],
        ["duplicated captions (text occurs more than once)", _share(duplicates["duplicated"], duplicates["captions"])],
    ]


def _captioners(quality: dict) -> list[list]:
    repeats = {tuple(c[k] for k in CAPTIONER): c for c in quality["duplicates"]["by_captioner"]}
    rows = []
    for c in quality["signals"]["by_captioner"]:
        own = repeats.get(tuple(c[k] for k in CAPTIONER), {})
        rows.append([*(c[k] for k in CAPTIONER), c["captions"], c["with_signals"], c["mean_words"],
                     c["mean_repetition"], c["mean_grounding_rate"], c["quotes"], c["quote_support"],
                     c["distinct_1"], c["distinct_2"], own.get("duplicated"), own.get("rate")])
    return rows


CAPTIONER_HEADERS = ["model", "revision", "prompt", "captions", "with signals", "mean words", "mean repetition",
                     "mean grounding", "quotes", "quote support", "distinct-1", "distinct-2", "own repeats",
                     "repeat rate"]
WIDE = ".wide{overflow-x:auto}.wide td{white-space:nowrap}"  # the captioner table scrolls, never squeezes


def _signals(quality: dict) -> list[list]:
    return [[name, s["count"], s.get("mean"), s.get("p10"), s.get("median"), s.get("p90"), s.get("min"), s.get("max")]
            for name, s in quality["signals"]["signals"].items()]


def _flags(quality: dict) -> list[list]:
    measured = quality["signals"]["rows_with_signals"]
    return [[flag, n, round(n / measured, 4) if measured else None] for flag, n in quality["signals"]["flags"].items()]


def render_quality(quality: dict, plots: list[Plot], ground_truth: dict | None = None) -> str:
    """The page; `ground_truth` is the saved `finecap eval dataset` result (kept out of quality.json,
    so `finecap diff` compares each metric once, from eval_dataset.json)."""
    note = quality["signals"].get("note")
    figures = "".join(
        f'<figure><img src="plots/{escape(p.name)}" alt="{escape(p.title)}"><figcaption>{escape(p.title)}'
        "</figcaption></figure>" for p in plots
    )
    sections = [
        ("Global captions per captioner",
         f'<div class="wide">{table(CAPTIONER_HEADERS, _captioners(quality))}</div>'
         '<p class="muted">means over the captions with signals; quotes: those OCR could check, quote support: the '
         "share OCR found; distinct-n: distinct word n-grams / all; own repeats: captions whose text the same "
         "captioner wrote more than once</p>"),
        ("Row signals", table(["signal", "rows measured", "mean", "p10", "median", "p90", "min", "max"],
                              _signals(quality))),
        ("Flags (quality.* thresholds)", table(["flag", "rows", "share of rows with signals"], _flags(quality))),
        ("Most repeated captions (normalised)", table(["caption", "times"],
                                                     [[t["text"], t["count"]] for t in quality["duplicates"]["top"]])),
        ("Distributions", f'<div class="plots">{figures}</div>' if figures else '<p class="muted">none</p>'),
    ]
    body = "".join(f"<h2>{escape(title)}</h2>{html}" for title, html in sections)
    body += render_ground_truth(ground_truth, quality.get("version"))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>FineCap quality: {escape(quality['output'])}</title><style>{CSS}{WIDE}</style></head><body>"
        f"<h1>FineCap quality</h1><p class=\"muted\"><code>{escape(quality['output'])}</code></p>"
        '<p><a href="index.html">report</a> · <a href="gallery/index.html">gallery</a> · '
        '<a href="quality.json">quality.json</a></p>'
        + (f'<p class="muted">{escape(note)}</p>' if note else "")
        + f"<h2>Summary</h2>{table(None, _summary(quality))}{body}</body></html>"
    )


def write_quality(output: str, shards: list[CommittedShard] | None = None) -> tuple[str, dict]:
    """Measure, then write report/quality.json, its plots and report/quality.html; return (page, quality)."""
    quality = collect_quality(output, shards)
    storage.write_bytes(storage.join(output, "report", "quality.json"), json.dumps(quality, indent=2).encode())
    plots = write_plots(output, quality["signals"], render_quality_plots)
    path = storage.join(output, "report", PAGE)
    storage.write_bytes(path, render_quality(quality, plots, read_ground_truth(output)).encode())
    return path, quality
