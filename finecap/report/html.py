"""report/index.html: the statistics as tables, the plots, and links to the gallery, the quality
page (report/quality_page.py) and the card.

One static page with inline CSS and relative links, so it opens from a local folder or any
static host; every value from the data is HTML-escaped.
"""

from __future__ import annotations

from html import escape

from finecap import storage
from finecap.report.plots import Plot

CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:1.5em;margin-bottom:0}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}figure img{width:530px;max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.muted{color:#666;font-size:.9em}code{font-size:.9em}
"""


def table(headers: list[str] | None, rows: list[list]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>" if headers else ""
    body = "".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows
    )
    return f"<table>{head}{body}</table>"


def _cell(value) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="n">{value:,}</td>' if isinstance(value, int) else f'<td class="n">{value:,.4g}</td>'
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _summary(s: dict) -> list[list]:
    return [
        ["shards committed", s["shards"]],
        ["input rows", s["rows_in"]],
        ["rows written", s["rows"]],
        ["rows rejected", s["rejects"]],
        ["global captions", sum(c["captions"] for c in s["captions"].values())],
        ["regions", s["regions"]["total"]],
        ["images with OCR text", f"{s['ocr']['images_with_text']} ({s['ocr']['image_share']:.1%})"],
        ["OCR share of regions", f"{s['ocr']['region_share']:.1%}"],
    ]


def _sections(s: dict) -> list[tuple[str, str]]:
    captions = [[m, c["captions"], c["mean_tokens"], c["min_tokens"], c["max_tokens"],
                 ", ".join(f"{p} ({n})" for p, n in c["prompts"].items())] for m, c in s["captions"].items()]
    origins = [[o, v["regions"], v["images_with"], v["per_image"].get("mean"), v["per_image"].get("max"),
                v["area"].get("mean")] for o, v in s["regions"]["by_origin"].items()]
    categories = [[o, c, n] for o, top in s["top_categories"].items() for c, n in top]
    rejects = [[stage, reason, n] for stage, reasons in s["rejects_by_stage"].items() for reason, n in reasons.items()]
    sizes = [[name, v.get("mean"), v.get("min"), v.get("max")] for name, v in s["image_size"].items()]
    quality = [[name, v.get("mean"), v.get("min"), v.get("max")] for name, v in s["quality"].items()]
    seconds = [[k, v, s["stage_seconds_per_row"].get(k)] for k, v in s["stage_seconds"].items()]
    prov = s["provenance"]
    models = [[m.get("stage"), m.get("name"), m.get("model"), m.get("revision"), m.get("prompt_id")]
              for m in prov["models"]]
    return [
        ("Global captions per captioner", table(["model", "captions", "mean tokens", "min", "max", "prompts"], captions)),
        ("Regions by origin", table(["origin", "regions", "images with", "mean per image", "max per image",
                                      "mean box area"], origins)),
        ("Region captions by model", table(["caption model", "regions"], list(map(list, s["regions"]["captioned_by"].items())))),
        ("Regions without a caption: failed generations", table(["reason", "regions"], list(map(
            list, s.get("region_caption_failures", {}).items())))),
        ("Top categories", table(["origin", "category", "regions"], categories)),
        ("Rejects by stage and reason", table(["stage", "reason", "rows"], rejects)),
        ("Image sizes", table(["", "mean", "min", "max"], sizes)),
        ("Quality scores", table(["score", "mean", "min", "max"], quality)),
        ("Time per stage (summed over workers)", table(["stage", "seconds", "seconds per input row"], seconds)),
        ("Models", table(["stage", "name", "model", "revision", "prompt"], models)),
        ("Prompts", table(["prompt id", "sha256"], list(map(list, prov["prompts"].items())))),
        ("Config", table(["config hashes", "finecap versions", "schema versions"],
                          [[", ".join(prov["config_hashes"]), ", ".join(prov["finecap_versions"]),
                            ", ".join(prov["schema_versions"])]])),
    ]


def render_index(stats: dict, plots: list[Plot], gallery_pages: int) -> str:
    gallery = (f'<a href="gallery/index.html">gallery</a> ({gallery_pages} page{"s" * (gallery_pages != 1)})'
               if gallery_pages else "no gallery (no rows)")
    figures = "".join(
        f'<figure><img src="plots/{escape(p.name)}" alt="{escape(p.title)}"><figcaption>{escape(p.title)}'
        "</figcaption></figure>" for p in plots
    )
    sections = "".join(f"<h2>{escape(title)}</h2>{body}" for title, body in _sections(stats))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>FineCap report: {escape(stats['output'])}</title><style>{CSS}</style></head><body>"
        f"<h1>FineCap report</h1><p class=\"muted\"><code>{escape(stats['output'])}</code></p>"
        f'<p>{gallery} · <a href="quality.html">quality</a> · <a href="../README.md">dataset card</a> · '
        '<a href="stats.json">stats.json</a></p>'
        f"<h2>Summary</h2>{table(None, _summary(stats))}"
        f'<h2>Plots</h2><div class="plots">{figures}</div>{sections}</body></html>'
    )


def write_index(output: str, stats: dict, plots: list[Plot], gallery_pages: int) -> str:
    path = storage.join(output, "report", "index.html")
    storage.write_bytes(path, render_index(stats, plots, gallery_pages).encode())
    return path
