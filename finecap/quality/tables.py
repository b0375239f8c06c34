"""The evaluation's tables as (headers, rows): one definition for the command's text output
(format.py) and the report's quality page (report/quality_truth.py), so the two never disagree."""

from __future__ import annotations

from finecap.quality.compare import group_label

Table = tuple[list[str], list[list]]
CAPTIONER = ("model", "model_revision", "prompt_id")


def captions_table(result: dict) -> Table:
    return (["captioner", "captions", "P", "R", "F1", "halluc.", "colour P", "colour R", "words R", "counts",
             "words", "dist-1", "dist-2"],
            [[group_label(c, CAPTIONER), c["captions"], c["precision"], c["recall"], c["f1"],
              c["hallucination_rate"], c["attribute_precision"], c["attribute_recall"], c["word_recall"],
              c["count_accuracy"], c["mean_words"], c["distinct_1"], c["distinct_2"]] for c in result["captions"]])


def detection_table(result: dict) -> Table:
    """All categories, then each category the truth has instances of."""
    det = result["detection"]
    return (["", "AP", "AP50", "AP75", "AR@100", "instances"],
            [["all", det["ap"], det["ap50"], det["ap75"], det["ar100"], det["instances"]]]
            + [[name, c["ap"], c["ap50"], None, None, c["instances"]]
               for name, c in sorted(det["per_category"].items()) if c["instances"]])


def ocr_table(result: dict) -> Table:
    ocr = result["ocr"]
    return (["", "truth words", "read", "P", "R", "F1", "box P", "box R", "CER"],
            [["words", ocr["truth_words"], ocr["predicted_words"], ocr["precision"], ocr["recall"], ocr["f1"],
              ocr["box_precision"], ocr["box_recall"], ocr["cer"]]])


def region_captions_table(result: dict) -> Table:
    return (["caption model", "captioned", "matched", "category", "colour"],
            [[r["caption_model"], r["regions"], r["matched"], r["category_accuracy"], r["colour_accuracy"]]
             for r in result["region_captions"]])


def signals_table(result: dict) -> Table:
    return (["captioner", "captions", "words", "repetition", "grounding", "quote support", "dist-1", "dist-2"],
            [[group_label(c, CAPTIONER), c["captions"], c["mean_words"], c["mean_repetition"],
              c["mean_grounding_rate"], c["quote_support"], c["distinct_1"], c["distinct_2"]]
             for c in result["signals"]["by_captioner"]])
