"""OCR word scores against truth text: word precision and recall at IoU >= 0.5, and CER.

Predicted words are a row's `origin == "ocr"` regions with non-empty `ocr_text`, their boxes
scaled to the truth image's pixels; truth words are its legible texts. Each prediction is
matched to at most one truth word and back (`boxes.match_boxes`, highest IoU first), as in
COCO-Text's and ICDAR's word-level evaluations. A prediction left unmatched that overlaps an
illegible word (IoU >= 0.5) is ignored, neither right nor wrong: the truth does not say what
that word reads, as COCO-Text's own evaluation has it.

Texts are compared after NFKC (the OCR stage writes NFKC text), casefold and stripping edge
punctuation, so "STOP!" reads as "stop". A word is right when its box is matched and the
texts are equal. CER = (edit distances of matched pairs + characters of unmatched truth
words) / characters of all legible truth words, on the same compared forms, so a right word
costs no character errors. Box precision and recall count box matches alone (text ignored):
they separate "found the word" from "read it".
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from finecap.quality.boxes import iou, match_boxes, to_pixels
from finecap.quality.duplicates import normalise_caption
from finecap.quality.truth import TruthImage

MIN_IOU = 0.5


@dataclass(frozen=True)
class OcrScore:
    """Counts for one image; aggregate_ocr turns sums of them into rates."""

    truth_words: int  # legible truth words
    predicted_words: int  # OCR predictions scored (ignored ones left out)
    ignored: int  # unmatched predictions on an illegible word
    box_matches: int  # predictions matched to a legible word by IoU
    word_matches: int  # of those, the ones whose text equals the truth's
    truth_chars: int  # characters of the legible truth words (compared forms)
    char_errors: int  # edit distances of matched pairs + characters of missed words


def normalise(text: str) -> str:
    """The form texts are compared in: NFKC, then a caption's normal form (duplicates.normalise_caption:
    casefolded, whitespace collapsed, edge punctuation stripped)."""
    return normalise_caption(unicodedata.normalize("NFKC", text))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def score_ocr(image: TruthImage, regions: Sequence[dict] | None) -> OcrScore:
    """The OCR regions of one row against `image`'s truth text."""
    predicted = [r for r in regions or () if _is_prediction(r)]
    boxes = [to_pixels(r["bbox"], image.width, image.height) for r in predicted]
    texts = [normalise(r["ocr_text"]) for r in predicted]
    legible = [t for t in image.texts if t.legible]
    illegible = [t.bbox for t in image.texts if not t.legible]
    truth = [normalise(t.text) for t in legible]

    pairs = match_boxes(boxes, [t.bbox for t in legible], MIN_IOU)
    matched_p = {i for i, _, _ in pairs}
    matched_t = {j for _, j, _ in pairs}
    ignored = sum(1 for i, box in enumerate(boxes)
                  if i not in matched_p and any(iou(box, word) >= MIN_IOU for word in illegible))
    char_errors = sum(edit_distance(texts[i], truth[j]) for i, j, _ in pairs)
    char_errors += sum(len(word) for j, word in enumerate(truth) if j not in matched_t)
    return OcrScore(
        truth_words=len(legible),
        predicted_words=len(predicted) - ignored,
        ignored=ignored,
        box_matches=len(pairs),
        word_matches=sum(1 for i, j, _ in pairs if texts[i] == truth[j]),
        truth_chars=sum(len(word) for word in truth),
        char_errors=char_errors,
    )


def _is_prediction(region: dict) -> bool:
    bbox = region.get("bbox")
    return (region.get("origin") == "ocr" and bool((region.get("ocr_text") or "").strip())
            and isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(v is not None for v in bbox))


def aggregate_ocr(scores: Iterable[OcrScore]) -> dict:
    """Micro averages over images (sums of counts, then rates); None where a denominator is 0."""
    scores = list(scores)
    truth = sum(s.truth_words for s in scores)
    predicted = sum(s.predicted_words for s in scores)
    words = sum(s.word_matches for s in scores)
    boxes = sum(s.box_matches for s in scores)
    precision, recall = _rate(words, predicted), _rate(words, truth)
    return {
        "images": len(scores),
        "truth_words": truth,
        "predicted_words": predicted,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "box_precision": _rate(boxes, predicted),
        "box_recall": _rate(boxes, truth),
        "cer": _rate(sum(s.char_errors for s in scores), sum(s.truth_chars for s in scores)),
    }


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
