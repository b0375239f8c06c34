"""The human-readable `finecap eval dataset` report: the JSON's numbers as plain-text tables."""

from __future__ import annotations

from finecap.quality.compare import group_label


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def text_table(headers: list[str], rows: list[list]) -> list[str]:
    """Columns padded to their widest cell, the first left-aligned, the rest right-aligned."""
    cells = [headers] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(headers))]
    return ["  " + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in cells]


def format_eval(result: dict) -> list[str]:
    if result.get("truth") is None:
        return [f"dataset {result['dataset']} (no --truth: the signals only)", *_signals(result)]
    return _against_truth(result) + _signals(result)


def _signals(result: dict) -> list[str]:
    signals, dup = result["signals"], result["duplicate_captions"]
    lines = [f"quality signals: {signals['rows_with_signals']} of {signals['rows']} rows measured, "
             f"{signals['rows_flagged']} flagged"
             + (f" ({', '.join(f'{k} {v}' for k, v in signals['flags'].items() if v)})" if signals["rows_flagged"] else "")]
    lines += text_table(["captioner", "captions", "words", "repetition", "grounding", "quote support", "dist-1", "dist-2"],
                        [[group_label(c, ("model", "model_revision", "prompt_id")), c["captions"], c["mean_words"],
                          c["mean_repetition"], c["mean_grounding_rate"], c["quote_support"], c["distinct_1"],
                          c["distinct_2"]] for c in signals["by_captioner"]])
    lines.append(f"duplicate captions: {dup['duplicated']} of {dup['captions']} ({fmt(dup['rate'])})")
    return lines


def _against_truth(result: dict) -> list[str]:
    images = result["images"]
    lines = [f"dataset {result['dataset']} against {result['truth']}",
             f"images: {images['rows_matched']} of {images['truth']} truth images have a row; "
             f"{images['truth_without_row']} have none (rejected or not built); "
             f"{images['rows_without_truth']} rows have no truth image"]
    lines += ["global captions (per captioner, revision, prompt)"] + text_table(
        ["captioner", "captions", "P", "R", "F1", "halluc.", "colour P", "colour R", "words R", "counts",
         "words", "dist-1", "dist-2"],
        [[group_label(c, ("model", "model_revision", "prompt_id")), c["captions"], c["precision"], c["recall"],
          c["f1"], c["hallucination_rate"], c["attribute_precision"], c["attribute_recall"], c["word_recall"],
          c["count_accuracy"], c["mean_words"], c["distinct_1"], c["distinct_2"]] for c in result["captions"]])
    det = result["detection"]
    lines += [f"detector regions ({det['model'] or 'no detector recorded'}): {det['detections']} boxes, "
              f"{det['unmatched_detections']} of a category the truth lacks"]
    lines += text_table(["", "AP", "AP50", "AP75", "AR@100", "instances"],
                        [["all", det["ap"], det["ap50"], det["ap75"], det["ar100"], det["instances"]]]
                        + [[name, c["ap"], c["ap50"], None, None, c["instances"]]
                           for name, c in sorted(det["per_category"].items()) if c["instances"]])
    ocr = result["ocr"]
    lines += [f"OCR regions ({ocr['model'] or 'no OCR recorded'}): word scores at IoU >= 0.5"]
    lines += text_table(["", "truth words", "read", "P", "R", "F1", "box P", "box R", "CER"],
                        [["words", ocr["truth_words"], ocr["predicted_words"], ocr["precision"], ocr["recall"],
                          ocr["f1"], ocr["box_precision"], ocr["box_recall"], ocr["cer"]]])
    lines += ["region captions (per caption model): names the region's true category / colour"]
    lines += text_table(["caption model", "captioned", "matched", "category", "colour"],
                        [[r["caption_model"], r["regions"], r["matched"], r["category_accuracy"],
                          r["colour_accuracy"]] for r in result["region_captions"]]) if result["region_captions"] else \
        ["  none (no detector region has a caption)"]
    return lines


def format_comparison(rows: list[dict], a: str, b: str) -> list[str]:
    """Every metric, A beside B, with A - B."""
    lines = [f"A: {a}", f"B: {b}  (change = A - B)"]
    return lines + text_table(["metric", "A", "B", "change"],
                              [[r["metric"], r["a"], r["b"], _signed(r["change"])] for r in rows])


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"
