"""The human-readable `finecap eval dataset` report: the JSON's numbers as plain-text tables."""

from __future__ import annotations

from finecap.quality.tables import (
    captions_table,
    detection_table,
    ocr_table,
    region_captions_table,
    signals_table,
)


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
    lines += text_table(*signals_table(result))
    lines.append(f"duplicate captions: {dup['duplicated']} of {dup['captions']} ({fmt(dup['rate'])})")
    return lines


def _against_truth(result: dict) -> list[str]:
    images, det, ocr = result["images"], result["detection"], result["ocr"]
    lines = [f"dataset {result['dataset']} against {result['truth']}",
             f"images: {images['rows_matched']} of {images['truth']} truth images have a row; "
             f"{images['truth_without_row']} have none (rejected or not built); "
             f"{images['rows_without_truth']} rows have no truth image"]
    lines += ["global captions (per captioner, revision, prompt)", *text_table(*captions_table(result))]
    lines += [f"detector regions ({det['model'] or 'no detector recorded'}): {det['detections']} boxes, "
              f"{det['unmatched_detections']} of a category the truth lacks", *text_table(*detection_table(result))]
    lines += [f"OCR regions ({ocr['model'] or 'no OCR recorded'}): word scores at IoU >= 0.5",
              *text_table(*ocr_table(result))]
    lines += ["region captions (per caption model): names the region's true category / colour"]
    lines += text_table(*region_captions_table(result)) if result["region_captions"] else \
        ["  none (no detector region has a caption)"]
    return lines


def format_comparison(rows: list[dict], a: str, b: str) -> list[str]:
    """Every metric, A beside B, with A - B."""
    lines = [f"A: {a}", f"B: {b}  (change = A - B)"]
    return lines + text_table(["metric", "A", "B", "change"],
                              [[r["metric"], r["a"], r["b"], _signed(r["change"])] for r in rows])


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"
