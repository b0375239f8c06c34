"""HTML of one gallery page: a grid of cards, each an image with its region boxes, the regions'
captions under it (and on hover over a box), then the global captions; page navigation.

Boxes are SVG rectangles over the image in the image's own pixel coordinates (viewBox = width x
height), so they land where the data says at any display size. Number tags and the list beside
share a region index; hovering either highlights both (a few lines of inline JS, no server).
A row the quality stage flagged gets the class `flagged` (a coloured border) and a badge per flag;
its measured signals are listed under the title.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from finecap.report.plots import FLAG_COLOUR, ORIGIN_COLOURS, OTHER_COLOUR

CSS = """
body{font-family:system-ui,sans-serif;margin:16px auto;max-width:1400px;color:#222;padding:0 16px}
h1{font-size:1.3em;margin:0 0 4px}nav{margin:10px 0;font-size:.95em}nav a,nav b{margin-right:6px}
.legend span{display:inline-block;margin-right:14px;font-size:.9em}
.sw{display:inline-block;width:12px;height:12px;border:3px solid;vertical-align:-3px;margin-right:4px;
box-sizing:border-box}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:16px;align-items:start}
.card{border:1px solid #ddd;border-radius:6px;padding:10px;min-width:0}
.card h2{font-size:.9em;margin:0 0 6px;word-break:break-all}
.frame{position:relative;line-height:0}
.frame img{width:100%;height:auto;display:block}
.frame svg{position:absolute;left:0;top:0;width:100%;height:100%;overflow:visible}
.frame rect{fill:none;stroke-width:3px}.frame rect.hi{stroke-width:5px}
.frame rect.halo{stroke:#000;stroke-opacity:.45;stroke-width:5px}
.tag{position:absolute;transform:translateY(-100%);font:11px/14px monospace;padding:0 3px}
.regions{max-height:170px;overflow:auto;margin:8px 0 0;padding-left:0;list-style:none;font-size:.82em}
.regions li{padding:2px 4px;border-left:4px solid;margin-bottom:3px;overflow-wrap:anywhere}
.regions li.hi{background:#ffe}
.meta{color:#666;font-size:.85em}
.captions{max-height:150px;overflow:auto;font-size:.88em;overflow-wrap:anywhere}.captions p{margin:6px 0}
.flags{margin:0 0 6px;line-height:1.6}.signals{margin:0 0 6px}
.flag{display:inline-block;color:#fff;font-size:.78em;padding:0 6px;border-radius:3px;margin-right:4px}
""" + f".card.flagged{{border:2px solid {FLAG_COLOUR}}}.flag{{background:{FLAG_COLOUR}}}"
JS = """
document.querySelectorAll('[data-r]').forEach(function(el){
  var card=el.closest('.card'), sel='[data-r="'+el.getAttribute('data-r')+'"]';
  el.addEventListener('mouseenter',function(){card.querySelectorAll(sel).forEach(function(e){e.classList.add('hi')})});
  el.addEventListener('mouseleave',function(){card.querySelectorAll(sel).forEach(function(e){e.classList.remove('hi')})});
});
"""


@dataclass(frozen=True)
class Sample:
    """One image of the gallery: its row (captions, regions, size) and its image file."""

    key: str
    shard: str
    width: int
    height: int
    image_file: str  # relative to the page
    captions: list
    regions: list
    signals: dict | None = None  # the row's quality signals (schema v3); None when not measured


def colour(origin: str) -> str:
    return ORIGIN_COLOURS.get(origin, OTHER_COLOUR)


def text_colour(background: str) -> str:
    """Black or white, whichever reads better on a #rrggbb background."""
    r, g, b = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


def page_name(page: int) -> str:
    return "index.html" if page == 1 else f"page-{page:04d}.html"


def _nav(page: int, pages: int) -> str:
    links = ['<a href="../index.html">report</a> ·']
    if page > 1:
        links.append(f'<a href="{page_name(page - 1)}" rel="prev">« prev</a>')
    for p in range(1, pages + 1):
        links.append(f"<b>{p}</b>" if p == page else f'<a href="{page_name(p)}">{p}</a>')
    if page < pages:
        links.append(f'<a href="{page_name(page + 1)}" rel="next">next »</a>')
    return f"<nav>{' '.join(links)}</nav>"


def _box(index: int, region: dict, width: int, height: int) -> tuple[str, str]:
    """(SVG rects, HTML number tag) of one region: a dark halo under the coloured outline keeps
    it visible on any background. A malformed box (validate reports it) is listed, not drawn."""
    if len(region.get("bbox") or []) != 4:
        return "", ""
    x1, y1, x2, y2 = region["bbox"]
    c = colour(region["origin"])
    tip = escape(_label(region), quote=True)
    geometry = (f'vector-effect="non-scaling-stroke" x="{x1 * width:.2f}" y="{y1 * height:.2f}" '
                f'width="{(x2 - x1) * width:.2f}" height="{(y2 - y1) * height:.2f}"')
    rect = (
        f'<rect class="halo" {geometry}/><rect data-r="{index}" class="{escape(region["origin"], quote=True)}" '
        f'stroke="{c}" {geometry}><title>{tip}</title></rect>'
    )
    tag = (f'<span class="tag" data-r="{index}" title="{tip}" style="left:{x1 * 100:.3f}%;'
           f'top:{y1 * 100:.3f}%;background:{c};color:{text_colour(c)}">{index}</span>')
    return rect, tag


def _label(region: dict) -> str:
    subject = region.get("phrase") or region.get("ocr_text") or region.get("category") or region["origin"]
    return f"{subject}: {region['caption']}" if region.get("caption") else subject


def _region_item(index: int, region: dict) -> str:
    c = colour(region["origin"])
    head = escape(region.get("phrase") or region.get("category") or region["origin"])
    facts = [region["origin"]]
    if region.get("category") and region.get("phrase"):
        facts.append(region["category"])
    if region.get("score") is not None:
        facts.append(f"score {region['score']:.2f}")
    body = [f'<b>#{index} {head}</b> <span class="meta">{escape(", ".join(facts))}</span>']
    if region.get("ocr_text"):
        body.append(f'<br>text: “{escape(region["ocr_text"])}”')
    if region.get("caption"):
        body.append(f'<br>{escape(region["caption"])} <span class="meta">{escape(region.get("caption_model") or "")}'
                    "</span>")
    return f'<li data-r="{index}" style="border-color:{c}">{"".join(body)}</li>'


def _caption(caption: dict) -> str:
    meta = f"{caption['model']} · {caption['model_revision']} · {caption['prompt_id']} · {caption['num_tokens']} tokens"
    return f'<p>{escape(caption["text"])}<br><span class="meta">{escape(meta)}</span></p>'


def _signals(signals: dict | None) -> tuple[list[str], str]:
    """(the row's flags, a line of its measured signals); nothing for a row without signals."""
    if not signals:
        return [], ""
    flags = list(signals.get("flags") or [])
    values = [f"{name} {value:.2f}" if isinstance(value, float) else f"{name} {value}"
              for name, value in signals.items() if name != "flags" and value is not None]
    line = f'<p class="meta signals">{escape(" · ".join(values))}</p>' if values else ""
    return flags, line


def render_card(number: int, sample: Sample) -> str:
    boxes = [_box(i, r, sample.width, sample.height) for i, r in enumerate(sample.regions, 1)]
    rects, tags = "".join(b[0] for b in boxes), "".join(b[1] for b in boxes)
    items = "".join(_region_item(i, r) for i, r in enumerate(sample.regions, 1))
    captions = "".join(_caption(c) for c in sample.captions) or '<p class="meta">no global caption</p>'
    flags, signals = _signals(sample.signals)
    badges = "".join(f'<span class="flag">{escape(f)}</span>' for f in flags)
    badges = f'<p class="flags">{badges}</p>' if flags else ""
    marks = f'class="card flagged" data-flags="{escape(" ".join(flags), quote=True)}"' if flags else 'class="card"'
    return (
        f'<article {marks} id="sample-{number}" data-key="{escape(sample.key, quote=True)}">'
        f'<h2>{escape(sample.key)} <span class="meta">{sample.width}×{sample.height} · {escape(sample.shard)} · '
        f"{len(sample.regions)} regions</span></h2>{badges}{signals}"
        f'<div class="frame"><img src="{escape(sample.image_file, quote=True)}" '
        f'alt="{escape(sample.key, quote=True)}" width="{sample.width}" height="{sample.height}">'
        f'<svg viewBox="0 0 {sample.width} {sample.height}" preserveAspectRatio="none" '
        f'xmlns="http://www.w3.org/2000/svg">{rects}</svg>{tags}</div>'
        f'<ol class="regions">{items or "<li>no regions</li>"}</ol>'
        f'<div class="captions">{captions}</div></article>'
    )


def _order(sort_by: str | None) -> str:
    if sort_by is None:
        return ""
    name, first = sort_by.removeprefix("-"), "highest" if sort_by.startswith("-") else "lowest"
    return f'<p class="meta">sorted by {escape(name)}, {first} first; rows without it last</p>'


def render_page(title: str, page: int, pages: int, first_number: int, samples: list[Sample],
                sort_by: str | None = None) -> str:
    legend = "".join(
        f'<span><i class="sw" style="border-color:{c}"></i>{escape(o)}</span>' for o, c in ORIGIN_COLOURS.items()
    )
    cards = "".join(render_card(first_number + i, s) for i, s in enumerate(samples))
    nav = _nav(page, pages)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · page {page}/{pages}</title><style>{CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><div class="legend">boxes: {legend}</div>{_order(sort_by)}{nav}'
        f'<div class="grid">{cards}</div>{nav}'
        f"<script>{JS}</script></body></html>"
    )
