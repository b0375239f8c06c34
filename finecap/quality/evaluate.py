"""`finecap eval dataset OUT [--truth TRUTH]`: a built dataset scored, against ground truth when given.

One pass over the committed shards, reading only keys, URLs, captions and regions (never image
bytes), matches each row to its truth image (truth.py) and scores:

* global captions, grouped by what wrote them (model, revision, prompt id from each caption's
  provenance): object-mention precision, recall, F1, hallucination rate, colour pairs, words,
  counts, length and distinct-n (caption_metrics.py);
* detector regions: COCO AP, AP50, AP75, AR@100, per category, by pycocotools (detection_metrics.py);
* OCR regions: word precision and recall at IoU >= 0.5, character error rate (ocr_metrics.py);
* region captions, grouped by caption model: does each name its region's true category and
  colour (region_metrics.py);

and adds what needs no truth (all there is without --truth): the quality stage's signals and the
duplicate-caption rate (summary.py, duplicates.py). Rows without a truth image and truth images without a row are
counted, so a score always says how much of the truth it covers.
"""

from __future__ import annotations

from collections import defaultdict

from finecap.dataset.reader import committed_shards, iter_committed
from finecap.dataset.versions import latest_version
from finecap.errors import UserError
from finecap.quality.caption_metrics import aggregate_captions, score_caption
from finecap.quality.detection_metrics import detection_scores
from finecap.quality.duplicates import duplicate_captions
from finecap.quality.ocr_metrics import aggregate_ocr, score_ocr
from finecap.quality.region_metrics import aggregate_region_captions, score_region_captions
from finecap.quality.summary import signal_summary
from finecap.quality.truth import Truth, load_truth
from finecap.quality.vocabulary import Vocabulary, load_vocabulary_file

COLUMNS = ["key", "url", "captions", "regions"]


def evaluate_dataset(output: str, truth_uri: str | None = None, vocabulary_uri: str | None = None,
                     limit: int | None = None) -> dict:
    """Every metric of `output`, as one JSON-able dict: against `truth_uri` when given, and the
    signals and duplicate captions (which need no truth) always."""
    if vocabulary_uri is not None and truth_uri is None:
        raise UserError("--vocabulary names synonyms of truth categories: give --truth too")
    shards = committed_shards(output)
    if not shards:
        raise UserError(f"{output}: no committed shard to evaluate (is it a FineCap output?)")
    version = latest_version(output)
    result = {"dataset": output, "truth": truth_uri,
              "version": version["version"] if version else None}  # the report tells a stale score by it
    if truth_uri is not None:
        truth = load_truth(truth_uri)
        vocab = Vocabulary.from_truth(truth, load_vocabulary_file(vocabulary_uri) if vocabulary_uri else None)
        result.update(score_against_truth(output, shards, truth, vocab, limit))
    result["signals"] = signal_summary(output, shards=shards)
    result["duplicate_captions"] = duplicate_captions(output, shards=shards)
    return result


def score_against_truth(output: str, shards, truth: Truth, vocab: Vocabulary, limit: int | None = None) -> dict:
    """The ground-truth metrics of the first `limit` rows (all when None) of `output`."""
    captions: dict[tuple, tuple[list, list]] = defaultdict(lambda: ([], []))
    region_scores: dict[str, list] = defaultdict(list)
    ocr_scores, pairs, matched, unmatched = [], [], set(), 0
    for row in _rows(output, shards, limit):
        image = truth.match(row["key"], row["url"])
        if image is None:
            unmatched += 1
            continue
        matched.add(image.id)
        for caption in row["captions"] or []:
            scores, texts = captions[(caption["model"], caption["model_revision"], caption["prompt_id"])]
            scores.append(score_caption(caption["text"], image, vocab))
            texts.append(caption["text"])
        regions = list(row["regions"] or [])
        pairs.append((image, regions))
        ocr_scores.append(score_ocr(image, regions))
        for model, group in _by_caption_model(regions).items():
            region_scores[model].append(score_region_captions(group, image, vocab))
    models = _stage_models(shards)
    return {
        "images": {"truth": len(truth.images), "rows_matched": len(matched), "rows_without_truth": unmatched,
                   "truth_without_row": len(truth.images) - len(matched)},
        "captions": [{"model": m, "model_revision": r, "prompt_id": p, **aggregate_captions(scores, texts)}
                     for (m, r, p), (scores, texts) in sorted(captions.items())],
        "detection": {"model": models.get("detect"),
                      **detection_scores(pairs, truth.category_names(), vocab.canonical)},
        "ocr": {"model": models.get("ocr"), **aggregate_ocr(ocr_scores)},
        "region_captions": [{"caption_model": model, **aggregate_region_captions(scores)}
                            for model, scores in sorted(region_scores.items())],
    }


def _rows(output: str, shards, limit: int | None):
    """The committed rows (the columns scored), in shard order, at most `limit` of them."""
    seen = 0
    for _, data in iter_committed(output, COLUMNS, shards=shards):
        for row in data.to_pylist():
            if limit is not None and seen >= limit:
                return
            seen += 1
            yield row


def _by_caption_model(regions: list[dict]) -> dict[str, list[dict]]:
    """Detector regions with a caption, by the model that wrote it."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for region in regions:
        if region.get("origin") == "detector" and region.get("caption") and region.get("caption_model"):
            groups[region["caption_model"]].append(region)
    return groups


def _stage_models(shards) -> dict[str, str]:
    """stage -> "model@revision" as the newest committed manifest records it."""
    found: dict[str, str] = {}
    for shard in shards:
        for entry in shard.manifest.get("models") or []:
            found[entry.get("stage", "")] = f"{entry.get('model')}@{entry.get('revision')}"
    return found
