"""The quality page's ground-truth section: the last `finecap eval dataset` result, as tables.

`finecap eval dataset OUT --truth ...` saves its result as report/eval_dataset.json; the report
shows it beside the signals, and says so when the output has had a new version since it was
scored (the numbers then describe an older dataset).
"""

from __future__ import annotations

import json
from html import escape

from finecap import storage
from finecap.quality.cli import RESULT_FILE
from finecap.quality.tables import captions_table, detection_table, ocr_table, region_captions_table
from finecap.report.html import table


def read_ground_truth(output: str) -> dict | None:
    """The saved evaluation of `output`, or None when it was never scored (or the file is unreadable)."""
    uri = storage.join(output, "report", RESULT_FILE)
    if not storage.exists(uri):
        return None
    try:
        return json.loads(storage.read_bytes(uri))
    except (ValueError, OSError):
        return None


def render_ground_truth(result: dict | None, current_version: str | None) -> str:
    if result is None or result.get("truth") is None:
        return ('<h2>Against ground truth</h2><p class="muted">not scored: run <code>finecap eval dataset OUT '
                "--truth TRUTH.json</code> (COCO format; <code>finecap samples</code> writes one) and report again</p>")
    images = result["images"]
    stale = ""
    if result.get("version") != current_version:
        stale = (f'<p class="muted">scored at version {escape(str(result.get("version")))}; the output is now at '
                 f"version {escape(str(current_version))}: run the evaluation again</p>")
    det, ocr = result["detection"], result["ocr"]
    regions = region_captions_table(result)
    return "".join([
        "<h2>Against ground truth</h2>", stale,
        f'<p class="muted">truth <code>{escape(result["truth"])}</code>: {images["rows_matched"]} of '
        f'{images["truth"]} truth images have a row, {images["rows_without_truth"]} rows have no truth image</p>',
        "<h3>Global captions</h3>", f'<div class="wide">{table(*captions_table(result))}</div>',
        '<p class="muted">object mentions against the categories present (micro average); halluc.: '
        "captions naming an absent category (CHAIR<sub>s</sub>)</p>",
        f"<h3>Detector regions ({escape(str(det['model']))}, pycocotools)</h3>",
        f'<p class="muted">{det["detections"]} boxes, {det["unmatched_detections"]} of no truth category</p>',
        table(*detection_table(result)),
        f"<h3>OCR regions ({escape(str(ocr['model']))}), IoU &ge; 0.5</h3>", table(*ocr_table(result)),
        "<h3>Region captions</h3>",
        table(*regions) if regions[1] else '<p class="muted">no detector region has a caption</p>',
    ])
