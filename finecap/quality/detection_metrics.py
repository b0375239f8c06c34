"""Detector AP against COCO instances, computed by pycocotools: the numbers detection papers report.

Only `origin == "detector"` regions are scored (OCR regions are text lines, not objects). A
region's category comes from `canonical(category)`, else `canonical(phrase)`: detectors name
boxes with free text ("red squares"), the truth with its category names. Regions that map to no
truth category are counted (`unmatched_detections`) and left out, as COCO leaves out results of
categories it does not evaluate. Scores are the regions' scores; boxes are scaled from [0, 1] to
the truth image's pixels.

pycocotools' defaults are kept (IoU 0.50:0.05:0.95, 101 recall points, at most 100 detections
per image, area range "all"), so AP here is comparable with published COCO AP. Every (truth
image, row) pair is its own COCO image, so two rows matched to one truth image are each scored
against the whole truth rather than sharing (and double counting) one image's objects.

pycocotools prints progress to stdout; it is silenced, since `finecap eval dataset` prints one
JSON object as its last line.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from finecap.quality.boxes import to_pixels
from finecap.quality.truth import TruthImage, box_to_xywh

Pair = tuple[TruthImage, Sequence[dict] | None]
Canonical = Callable[[str], str | None]
MAX_DETS = 100  # COCO's largest maxDets: AP and AR@100 are read at it


def detection_scores(pairs: Iterable[Pair], categories: Iterable[str], canonical: Canonical) -> dict:
    """COCO AP, AP50, AP75 and AR@100 of the rows' detector regions, overall and per category.

    `pairs` are (truth image, that row's regions); `categories` the truth's category names.
    AP values are None where pycocotools has nothing to measure (no truth instance of that
    category); with instances but no detections they are 0.0.
    """
    pairs = list(pairs)
    cat_ids = _category_ids(categories, pairs)
    images = [{"id": n, "width": image.width, "height": image.height} for n, (image, _) in enumerate(pairs, 1)]
    truth = _truth_annotations(pairs, cat_ids)
    detections, seen, unmatched = _detections(pairs, cat_ids, canonical)
    evaluation = _evaluate(images, cat_ids, truth, detections)
    instances = {name: 0 for name in cat_ids}
    for image, _ in pairs:
        for obj in image.objects:
            instances[obj.category] += not obj.iscrowd  # crowd regions are not instances in COCO
    per_category = {
        name: {"instances": instances[name], "ap": _ap(evaluation, cat_id), "ap50": _ap(evaluation, cat_id, 0.5)}
        for name, cat_id in cat_ids.items()
    }
    return {
        "images": len(pairs),
        "instances": sum(instances.values()),
        "detections": seen,
        "unmatched_detections": unmatched,
        "ap": _ap(evaluation),
        "ap50": _ap(evaluation, iou=0.5),
        "ap75": _ap(evaluation, iou=0.75),
        "ar100": _ar(evaluation),
        "per_category": per_category,
    }


def _category_ids(categories: Iterable[str], pairs: list[Pair]) -> dict[str, int]:
    """Category name -> COCO id (1, 2, ... in the order given); truth objects' categories missing
    from `categories` are added, so every instance is scored."""
    names = list(dict.fromkeys(categories))
    for image, _ in pairs:
        names += [obj.category for obj in image.objects if obj.category not in names]
    return {name: n for n, name in enumerate(names, 1)}


def _truth_annotations(pairs: list[Pair], cat_ids: dict[str, int]) -> list[dict]:
    """The truth images' objects as COCO instances (ids from 1: pycocotools reads 0 as "unmatched")."""
    annotations = []
    for image_id, (image, _) in enumerate(pairs, 1):
        for obj in image.objects:
            x, y, w, h = _xywh(obj.bbox)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": cat_ids[obj.category], "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": int(obj.iscrowd)})
    return annotations


def _detections(pairs: list[Pair], cat_ids: dict[str, int], canonical: Canonical) -> tuple[list[dict], int, int]:
    """(COCO results of the detector regions with a truth category, detector regions seen,
    those with no truth category)."""
    results, seen, unmatched = [], 0, 0
    for image_id, (image, regions) in enumerate(pairs, 1):
        for region in regions or ():
            if region.get("origin") != "detector" or not _is_box(region.get("bbox")):
                continue
            seen += 1
            name = _region_category(region, canonical)
            if name not in cat_ids:
                unmatched += 1
                continue
            box = to_pixels(region["bbox"], image.width, image.height)
            # A detector region without a score ranks last rather than breaking pycocotools' sort.
            score = float(region["score"]) if region.get("score") is not None else 0.0
            results.append({"image_id": image_id, "category_id": cat_ids[name], "bbox": _xywh(box),
                            "score": score})
    return results, seen, unmatched


def _region_category(region: dict, canonical: Canonical) -> str | None:
    for text in (region.get("category"), region.get("phrase")):
        if text:
            name = canonical(text)
            if name is not None:
                return name
    return None


def _is_box(bbox) -> bool:
    return isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(v is not None for v in bbox)


def _xywh(box: Sequence[float]) -> list[float]:
    """COCO [x, y, w, h]; a flipped box gets zero size (no overlap) instead of a negative one."""
    x, y, w, h = box_to_xywh(tuple(float(v) for v in box))
    return [x, y, max(w, 0.0), max(h, 0.0)]


def _evaluate(images: list[dict], cat_ids: dict[str, int], truth: list[dict], detections: list[dict]) -> COCOeval:
    categories = [{"id": i, "name": name} for name, i in cat_ids.items()]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = _coco({"images": images, "categories": categories, "annotations": truth})
        # loadRes indexes results[0], so it fails on an empty list; an empty result set is built
        # the same way as the truth instead.
        dt = (gt.loadRes(detections) if detections
              else _coco({"images": images, "categories": categories, "annotations": []}))
        evaluation = COCOeval(gt, dt, iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
    return evaluation


def _coco(dataset: dict) -> COCO:
    """A COCO object from a dict (COCO() only reads files; createIndex builds the lookups)."""
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def _ap(evaluation: COCOeval, cat_id: int | None = None, iou: float | None = None) -> float | None:
    """Mean precision over IoU thresholds (or at `iou`), recall points and categories (or
    `cat_id`), area "all", MAX_DETS: the slice COCOeval.summarize averages. precision is
    [IoU T, recall R, category K, area A, maxDets M], -1 where a category has no instance."""
    precision = evaluation.eval["precision"]
    t, k, a, m = _indices(evaluation, cat_id, iou)
    return _mean_measured(precision[t, :, k, a, m])


def _ar(evaluation: COCOeval) -> float | None:
    """Mean recall over IoU thresholds and categories at MAX_DETS (recall is [T, K, A, M])."""
    t, k, a, m = _indices(evaluation, None, None)
    return _mean_measured(evaluation.eval["recall"][t, k, a, m])


def _indices(evaluation: COCOeval, cat_id: int | None, iou: float | None) -> tuple:
    params = evaluation.params
    t = slice(None) if iou is None else int(np.flatnonzero(np.isclose(params.iouThrs, iou))[0])
    k = slice(None) if cat_id is None else list(params.catIds).index(cat_id)
    return t, k, params.areaRngLbl.index("all"), list(params.maxDets).index(MAX_DETS)


def _mean_measured(values: np.ndarray) -> float | None:
    measured = values[values > -1]
    return float(measured.mean()) if measured.size else None
