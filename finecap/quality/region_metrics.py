"""Region-caption metrics: does a detector region's caption name what the region truly holds?

Why: the regions stage captions each detector box from its crop, and a dense-caption dataset is
only as good as those captions. A region is judged against the truth object its box covers
(one-to-one, IoU >= 0.5, the usual detection match), so a wrong box does not make its caption
wrong: it is just not judged (the detector metrics count it). The caption is right about the
category when it names the object's category (synonyms and plurals count), and right about the
colour when it names the object's colour and binds no other colour to that category.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from finecap.quality.boxes import match_boxes, to_pixels
from finecap.quality.truth import TruthImage
from finecap.quality.vocabulary import Mention, Vocabulary, attribute_pairs_of, mention_counts, object_colour

MIN_IOU = 0.5


@dataclass(frozen=True)
class RegionCaptionMatch:
    """One captioned region matched to a truth object, and what its caption got right."""

    region: int  # index in the row's regions
    object: int  # index in the truth image's objects
    iou: float
    category: str  # the truth object's
    category_right: bool
    colour: str | None  # the truth object's colour, when the truth has one
    colour_right: bool | None  # None: the truth has no colour to judge by


@dataclass(frozen=True)
class RegionCaptionScores:
    """One row's captioned detector regions and those matched to truth objects."""

    regions: int
    matches: tuple[RegionCaptionMatch, ...]

    @property
    def matched(self) -> int:
        return len(self.matches)

    @property
    def category_right(self) -> int:
        return sum(1 for m in self.matches if m.category_right)

    @property
    def colour_judged(self) -> int:
        return sum(1 for m in self.matches if m.colour_right is not None)

    @property
    def colour_right(self) -> int:
        return sum(1 for m in self.matches if m.colour_right)


def score_region_captions(
    regions: Sequence[dict], image: TruthImage, vocab: Vocabulary
) -> RegionCaptionScores:
    """Match a row's captioned detector regions to `image`'s objects and check each caption.

    `regions` are the row's region dicts ([0, 1] boxes); keys older shards lack read as
    missing. Crowd objects are left out of the match: a crowd box holds many objects, so no
    single caption can be judged against it.
    """
    captioned = [
        (i, region) for i, region in enumerate(regions)
        if region.get("origin") == "detector" and (region.get("caption") or "").strip()
        and _is_box(region.get("bbox"))
    ]  # fmt: skip
    objects = [(j, obj) for j, obj in enumerate(image.objects) if not obj.iscrowd]
    predicted = [to_pixels(region["bbox"], image.width, image.height) for _, region in captioned]
    pairs = match_boxes(predicted, [obj.bbox for _, obj in objects], MIN_IOU)
    matches = []
    for p, t, overlap in sorted(pairs, key=lambda pair: captioned[pair[0]][0]):
        index, region = captioned[p]
        obj_index, obj = objects[t]
        caption = str(region["caption"])
        occurrences = vocab.occurrences(caption)
        colour = object_colour(obj)
        matches.append(RegionCaptionMatch(
            region=index, object=obj_index, iou=overlap, category=obj.category,
            category_right=obj.category in mention_counts(occurrences),
            colour=colour, colour_right=_colour_right(caption, occurrences, obj.category, colour, vocab),
        ))  # fmt: skip
    return RegionCaptionScores(len(captioned), tuple(matches))


def _colour_right(
    caption: str, occurrences: list[Mention], category: str, colour: str | None, vocab: Vocabulary
) -> bool | None:
    """Named, and not contradicted: "a red square" is right for a red square, "a blue square
    next to a red one" is not (blue is bound to the square)."""
    if colour is None:
        return None
    bound = {c for c, cat in attribute_pairs_of(occurrences) if cat == category}
    return colour in vocab.colour_mentions(caption) and bound <= {colour}


def _is_box(bbox) -> bool:
    return bbox is not None and len(bbox) == 4 and all(v is not None for v in bbox)


def aggregate_region_captions(scores: Sequence[RegionCaptionScores]) -> dict:
    """A group's region-caption accuracy: of the captioned regions matched to a truth object,
    the share naming its category, and (where the truth has colours) its colour. None when
    nothing was matched (or no matched object has a colour)."""
    matched = sum(s.matched for s in scores)
    judged = sum(s.colour_judged for s in scores)
    return {
        "regions": sum(s.regions for s in scores),
        "matched": matched,
        "category_accuracy": sum(s.category_right for s in scores) / matched if matched else None,
        "colour_accuracy": sum(s.colour_right for s in scores) / judged if judged else None,
    }
