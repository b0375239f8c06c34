"""The synthetic scenes' exact ground truth as a COCO file (`truth.coco.json`).

Why: `finecap eval dataset --truth` scores captions, boxes and OCR against a COCO-format file
(finecap.quality.truth), the format teams already hold for real data. Writing the scenes' truth
in that same format lets one evaluation path serve both, and lets a build of the bundled
samples be scored without any hand labelling.

What goes in, per scene: each shape as an instance of its category (the shape vocabulary) with
its colour and size as attributes, each drawn word as a COCO-Text annotation (every word is
drawn at a legible size, see scenes.MIN_FONT_PX), and the scene's caption(s). Boxes are the
pixel boxes measured from the drawn masks, so they are exact.
"""

from __future__ import annotations

from finecap.quality.truth import TruthCategory, TruthImage, TruthObject, TruthText, truth_to_coco
from finecap.samples.vocab import SHAPES

# Other names a captioner may fairly use for a shape; the caption metrics count them as
# mentions of the category. Only unambiguous ones: "plus" alone or "dot" would also match
# ordinary prose, and a shape without a sensible synonym gets none.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("disc", "disk"),
    "square": (),
    "triangle": (),
    "star": (),
    "ring": ("annulus", "donut", "doughnut", "hoop"),
    "cross": ("plus sign",),
    "diamond": ("rhombus", "lozenge"),
    "hexagon": (),
}


def shape_categories() -> list[TruthCategory]:
    """One category per shape of the vocabulary, ids 1.. in SHAPES order (0 is no COCO id)."""
    return [TruthCategory(i, shape, SYNONYMS.get(shape, ())) for i, shape in enumerate(SHAPES, start=1)]


def truth_image(image_id: int, scene: dict, *, file_name: str, key: str, captions: list[str]) -> TruthImage:
    """The truth of one scene.

    `scene` is a scene's ground-truth record (`Scene.to_record()`, also a scene line of
    ground_truth.jsonl), so a sample folder written before this file existed converts too.
    """
    objects = [
        TruthObject(o["shape"], _box(o["bbox_px"]), {"colour": o["colour"], "size": o["size"]})
        for o in scene["objects"]
    ]
    texts = [TruthText(w["text"], _box(w["bbox_px"]), legible=True) for w in scene["words"]]
    return TruthImage(image_id, file_name, int(scene["width"]), int(scene["height"]), key,
                      objects, texts, list(captions))


def scenes_coco(images: list[TruthImage], info: dict | None = None) -> dict:
    """The COCO object of `images` over the shape categories (write it with quality.truth.write_truth).

    `info` should hold only what the arguments fix (no dates), so the same arguments write the
    same bytes.
    """
    return truth_to_coco(images, shape_categories(), info)


def _box(bbox_px) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in bbox_px)
    return (x1, y1, x2, y2)
