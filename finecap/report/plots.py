"""PNG plots of the statistics (matplotlib, Agg canvas: no display, no pyplot global state).

Plots are drawn from stats.json alone, so they can be redrawn without reading the shards.
Histograms have uneven fixed edges (report/hist.py), so bins are drawn as labelled categories.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from finecap import storage

ORIGIN_COLOURS = {"detector": "#e6194b", "ocr": "#ffc400"}  # the gallery's box colours too
OTHER_COLOUR = "#808080"
FLAG_COLOUR = "#b00020"  # quality flags: the gallery's badges and the flags plot; a red no box colour uses


@dataclass(frozen=True)
class Plot:
    name: str  # file name under report/plots/
    title: str


def short_label(text: str, width: int = 32) -> str:
    """A tick label: control characters (noise captions carry some) shown as '?', long text cut."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return text if len(text) <= width else text[: width - 1] + "…"


def bin_labels(histogram: dict) -> list[str]:
    edges = histogram["edges"]
    labels = [f"{a:g}–{b:g}" if b != a + 1 else f"{a:g}" for a, b in zip(edges, edges[1:], strict=False)]
    return labels + [f"{edges[-1]:g}+"]


def _figure(width: float = 7.5, height: float = 3.6, nrows: int = 1, ncols: int = 1):
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(nrows, ncols, squeeze=False).flat)


def _grouped(ax, histograms: dict[str, dict], colours: dict[str, str] | None = None) -> None:
    """Side-by-side bars of histograms sharing the same edges, up to the last non-empty bin."""
    names = list(histograms)
    last = max((i for h in histograms.values() for i, c in enumerate(h["counts"]) if c), default=0)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        offset = (i - (len(names) - 1) / 2) * width
        ax.bar([b + offset for b in range(last + 1)], histograms[name]["counts"][: last + 1], width=width,
               label=name, color=(colours or {}).get(name))
    step = -(-(last + 1) // 10)  # at most ~10 labels, or they overlap
    labels = [label if i % step == 0 else "" for i, label in enumerate(bin_labels(histograms[names[0]])[: last + 1])]
    ax.set_xticks(list(range(last + 1)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("count")
    if len(names) > 1:
        ax.legend(fontsize=8)


def _caption_tokens(stats: dict, ax) -> bool:
    hists = {model: c["tokens"] for model, c in stats["captions"].items() if c.get("tokens")}
    if not hists:
        return False
    _grouped(ax, hists)
    ax.set_xlabel("tokens per global caption")
    return True


def _regions_per_image(stats: dict, ax) -> bool:
    by_origin = stats["regions"]["by_origin"]
    hists = {o: v["per_image"]["histogram"] for o, v in by_origin.items() if v["per_image"].get("histogram")}
    if not stats["regions"]["total"] or not hists:
        return False
    _grouped(ax, hists, ORIGIN_COLOURS)
    ax.set_xlabel("regions per image")
    return True


def _region_area(stats: dict, ax) -> bool:
    by_origin = stats["regions"]["by_origin"]
    hists = {o: v["area"]["histogram"] for o, v in by_origin.items() if v["area"].get("histogram")}
    if not hists:
        return False
    _grouped(ax, hists, ORIGIN_COLOURS)
    ax.set_xlabel("box area (share of the image)")
    return True


def _fit_height(ax, rows: int) -> None:
    """Horizontal bar charts grow with their number of bars, not stretch a few bars."""
    ax.figure.set_size_inches(7.5, 1.0 + 0.24 * max(rows, 2))


def _top_categories(stats: dict, ax) -> bool:
    entries = [(o, c, n) for o, top in stats["top_categories"].items() for c, n in top]
    entries = sorted(entries, key=lambda e: -e[2])[:25][::-1]
    if not entries:
        return False
    _fit_height(ax, len(entries))
    ax.barh(range(len(entries)), [n for _, _, n in entries],
            color=[ORIGIN_COLOURS.get(o, OTHER_COLOUR) for o, _, _ in entries])
    ax.set_yticks(range(len(entries)), [f"{short_label(c)} ({o})" for o, c, _ in entries], fontsize=8)
    ax.set_xlabel("regions")
    return True


def _rejects(stats: dict, ax) -> bool:
    items = sorted(stats["rejects_by_reason"].items(), key=lambda kv: kv[1])
    if not items:
        return False
    _fit_height(ax, len(items))
    ax.barh(range(len(items)), [n for _, n in items], color="#f58231")
    ax.set_yticks(range(len(items)), [short_label(k, 48) for k, _ in items], fontsize=8)
    ax.set_xlabel("rejected rows (stage/reason)")
    return True


def _stage_seconds(stats: dict, ax) -> bool:
    items = list(stats["stage_seconds_per_row"].items())
    if not items:
        return False
    _fit_height(ax, len(items))
    ax.barh(range(len(items)), [v for _, v in items], color="#3cb44b")
    ax.set_yticks(range(len(items)), [k for k, _ in items], fontsize=8)
    ax.set_xlabel("worker seconds per input row")
    return True


def _draw_single(draw, stats: dict) -> bytes | None:
    fig, axes = _figure()
    if not draw(stats, axes[0]):
        return None
    return _png(fig)


def _draw_panels(stats: dict, group: str, names: list[str], xlabel: str) -> bytes | None:
    present = [n for n in names if stats[group].get(n, {}).get("histogram")]
    if not present:
        return None
    nrows = -(-len(present) // 2)  # two panels a row: readable at the report's plot width
    fig, axes = _figure(7.5, 3.0 * nrows, nrows, 2)
    for ax in axes[len(present) :]:
        ax.set_visible(False)
    for ax, name in zip(axes, present, strict=False):
        _grouped(ax, {name: stats[group][name]["histogram"]}, {name: "#4363d8"})
        ax.set_title(f"{name} (mean {stats[group][name]['mean']:g})", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
    return _png(fig)


def _png(fig) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


SINGLE = (
    (Plot("caption_tokens.png", "Global caption length per captioner"), _caption_tokens),
    (Plot("regions_per_image.png", "Regions per image, by origin"), _regions_per_image),
    (Plot("region_area.png", "Region box area, by origin"), _region_area),
    (Plot("top_categories.png", "Most common region categories"), _top_categories),
    (Plot("rejects.png", "Rejected rows by stage and reason"), _rejects),
    (Plot("stage_seconds.png", "Time per stage"), _stage_seconds),
)


def render_plots(stats: dict) -> dict[Plot, bytes]:
    """Every plot the statistics have data for, as PNG bytes."""
    out = {}
    for plot, draw in SINGLE:
        png = _draw_single(draw, stats)
        if png:
            out[plot] = png
    sizes = _draw_panels(stats, "image_size", ["width", "height", "megapixels"], "pixels / megapixels")
    if sizes:
        out[Plot("image_size.png", "Image sizes")] = sizes
    quality = _draw_panels(stats, "quality", ["blur", "brightness", "clipped", "saturation"], "score")
    if quality:
        out[Plot("quality.png", "Quality scores (prepare stage)")] = quality
    return out


def _flags(summary: dict, ax) -> bool:
    items = sorted(summary["flags"].items(), key=lambda kv: kv[1])
    if not summary["rows_with_signals"] or not items:
        return False
    _fit_height(ax, len(items))
    ax.barh(range(len(items)), [n for _, n in items], color=FLAG_COLOUR)
    ax.set_yticks(range(len(items)), [k for k, _ in items], fontsize=8)
    ax.set_xlabel(f"flagged rows (of {summary['rows_with_signals']} with signals)")
    return True


def render_quality_plots(summary: dict) -> dict[Plot, bytes]:
    """The quality page's plots, from quality/summary.py's signal_summary: the distribution of every
    numeric row signal, and rows per flag (none for an output without signals)."""
    out = {}
    signals = _draw_panels(summary, "signals", list(summary["signals"]), "signal value")
    if signals:
        out[Plot("signals.png", "Quality signals per row (quality stage)")] = signals
    flags = _draw_single(_flags, summary)
    if flags:
        out[Plot("flags.png", "Rows per quality flag")] = flags
    return out


def write_plots(output: str, stats: dict, render=render_plots) -> list[Plot]:
    """Write `render(stats)`'s plots under OUTPUT/report/plots/; return them."""
    rendered = render(stats)
    for plot, png in rendered.items():
        storage.write_bytes(storage.join(output, "report", "plots", plot.name), png)
    return list(rendered)
