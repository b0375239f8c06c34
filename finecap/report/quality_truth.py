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
from finecap.quality.compare import group_label
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
    captions = [[group_label(c, ("model", "model_revision", "prompt_id")), c["captions"], c["precision"],
                 c["recall"], c["f1"], c["hallucination_rate"], c["attribute_precision"], c["attribute_recall"],
                 c["word_recall"], c["count_accuracy"], c["mean_words"], c["distinct_1"], c["distinct_2"]]
                for c in result["captions"]]
    det, ocr = result["detection"], result["ocr"]
    categories = [[name, c["instances"], c["ap"], c["ap50"]] for name, c in sorted(det["per_category"].items())
                  if c["instances"]]
    regions = [[r["caption_model"], r["regions"], r["matched"], r["category_accuracy"], r["colour_accuracy"]]
               for r in result["region_captions"]]
    return "".join([
        "<h2>Against ground truth</h2>", stale,
        f'<p class="muted">truth <code>{escape(result["truth"])}</code>: {images["rows_matched"]} of '
        f'{images["truth"]} truth images have a row, {images["rows_without_truth"]} rows have no truth image</p>',
        "<h3>Global captions</h3>",
        '<div class="wide">', table(["captioner", "captions", "precision", "recall", "F1", "hallucination",
                                     "colour P", "colour R", "word recall", "count accuracy", "mean words",
                                     "distinct-1", "distinct-2"], captions), "</div>",
        '<p class="muted">object mentions against the categories present (micro average); hallucination: '
        "captions naming an absent category (CHAIR<sub>s</sub>)</p>",
        f"<h3>Detector regions ({escape(str(det['model']))}, pycocotools)</h3>",
        table(["AP", "AP50", "AP75", "AR@100", "instances", "boxes", "of no truth category"],
              [[det["ap"], det["ap50"], det["ap75"], det["ar100"], det["instances"], det["detections"],
                det["unmatched_detections"]]]),
        table(["category", "instances", "AP", "AP50"], categories) if categories else "",
        f"<h3>OCR regions ({escape(str(ocr['model']))}), IoU &ge; 0.5</h3>",
        table(["truth words", "read", "precision", "recall", "F1", "box P", "box R", "CER"],
              [[ocr["truth_words"], ocr["predicted_words"], ocr["precision"], ocr["recall"], ocr["f1"],
                ocr["box_precision"], ocr["box_recall"], ocr["cer"]]]),
        "<h3>Region captions</h3>",
        table(["caption model", "captioned", "matched a truth object", "names its category", "names its colour"],
              regions) if regions else '<p class="muted">no detector region has a caption</p>',
    ])
