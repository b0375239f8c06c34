"""Ground truth in COCO format: what `finecap eval dataset --truth` reads and `finecap samples` writes.

One JSON file holds the three kinds of annotation people already have, in the layouts their
tools use, so a team's COCO instances file works as it is:

* instances (COCO detection): `{"image_id", "category_id", "bbox": [x, y, w, h], "iscrowd"}`,
  pixels; an optional `"attributes": {"colour": "red"}` (FineCap's synthetic scenes write it);
* captions (COCO captions): `{"image_id", "caption"}`;
* text (COCO-Text): `{"image_id", "bbox": [x, y, w, h], "utf8_string"}`, optionally
  `"legibility": "illegible"` (such words are left out of OCR scores, as COCO-Text's own
  evaluation does).

All three may sit in `annotations` (each is told apart by its fields: `caption`, `utf8_string`,
else an instance), or captions in `captions` and text in `text_annotations`. Categories may carry
`"synonyms": [...]`, which the caption metrics count as mentions of the category.

Rows are matched to images by the image's `key` (an extra field FineCap writes), else its
`file_name` against the row's key, the row's image path, or the basename of either (only when
that basename is unique in the truth).

Boxes here are pixel [x1, y1, x2, y2]; FineCap rows hold [0, 1]-normalised boxes, so the metrics
scale rows' boxes by the truth image's size.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field

from finecap import storage
from finecap.errors import UserError

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
TRUTH_FILE = "truth.coco.json"  # the name `finecap samples` writes


class TruthError(UserError):
    """The truth file is missing or not COCO-shaped (one line naming the file and the entry)."""


@dataclass(frozen=True)
class TruthObject:
    category: str
    bbox: Box
    attributes: dict = field(default_factory=dict)  # e.g. {"colour": "red"}
    iscrowd: bool = False


@dataclass(frozen=True)
class TruthText:
    text: str
    bbox: Box
    legible: bool = True


@dataclass
class TruthImage:
    id: int
    file_name: str
    width: int
    height: int
    key: str | None = None
    objects: list[TruthObject] = field(default_factory=list)
    texts: list[TruthText] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TruthCategory:
    id: int
    name: str
    synonyms: tuple[str, ...] = ()


@dataclass
class Truth:
    uri: str
    images: dict[int, TruthImage]
    categories: dict[int, TruthCategory]

    def category_names(self) -> list[str]:
        return sorted({c.name for c in self.categories.values()})

    def match(self, key: str | None, path: str | None = None) -> TruthImage | None:
        """The truth image of a row (its key and image path), or None."""
        index = self._index()
        for name in (key, path):
            if name and name in index:
                return index[name]
        for name in (key, path):
            base = posixpath.basename(name) if name else None
            if base and base in self._basenames():
                return self._basenames()[base]
        return None

    def _index(self) -> dict[str, TruthImage]:
        if not hasattr(self, "_by_name"):
            by_name: dict[str, TruthImage] = {}
            for image in self.images.values():
                by_name.setdefault(image.file_name, image)
            for image in self.images.values():  # keys win over file names
                if image.key:
                    by_name[image.key] = image
            self._by_name = by_name
        return self._by_name

    def _basenames(self) -> dict[str, TruthImage]:
        if not hasattr(self, "_by_base"):
            seen: dict[str, list[TruthImage]] = {}
            for image in self.images.values():
                seen.setdefault(posixpath.basename(image.file_name), []).append(image)
            self._by_base = {base: found[0] for base, found in seen.items() if len(found) == 1}
        return self._by_base


def xywh_to_box(bbox: list[float]) -> Box:
    x, y, w, h = (float(v) for v in bbox)
    return (x, y, x + w, y + h)


def box_to_xywh(box: Box) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


def read_json(uri: str, what: str, error: type[UserError]):
    """A JSON file the user names (any fsspec URI); a missing or malformed one is `error`, in one
    line naming `what` and the file."""
    try:
        return json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        raise error(f"{what} {uri}: no such file") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} {uri}: not JSON ({exc})") from None


def load_truth(uri: str) -> Truth:
    """Read and check a COCO-format truth file (any fsspec URI)."""
    return parse_truth(read_json(uri, "truth", TruthError), uri)


def parse_truth(data: dict, uri: str = "<truth>") -> Truth:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise TruthError(f"truth {uri}: expected a COCO object with an 'images' list")
    categories = {}
    for i, cat in enumerate(data.get("categories") or []):
        if "id" not in cat or "name" not in cat:
            raise TruthError(f"truth {uri}: categories[{i}] needs 'id' and 'name'")
        categories[int(cat["id"])] = TruthCategory(int(cat["id"]), str(cat["name"]),
                                                   tuple(str(s) for s in cat.get("synonyms") or ()))
    images = {}
    for i, img in enumerate(data["images"]):
        missing = [k for k in ("id", "file_name", "width", "height") if k not in img]
        if missing:
            raise TruthError(f"truth {uri}: images[{i}] lacks {', '.join(missing)}")
        images[int(img["id"])] = TruthImage(int(img["id"]), str(img["file_name"]), int(img["width"]),
                                            int(img["height"]), img.get("key"))
    annotations = [("annotations", a) for a in data.get("annotations") or []]
    annotations += [("captions", a) for a in data.get("captions") or []]
    annotations += [("text_annotations", a) for a in data.get("text_annotations") or []]
    for n, (where, ann) in enumerate(annotations):
        _add_annotation(images, categories, where, n, ann, uri)
    return Truth(uri, images, categories)


def _add_annotation(images: dict, categories: dict, where: str, n: int, ann: dict, uri: str) -> None:
    image = images.get(int(ann.get("image_id", -1)))
    if image is None:
        raise TruthError(f"truth {uri}: {where} entry {n} names image_id {ann.get('image_id')!r}, not in images")
    if "caption" in ann:
        image.captions.append(str(ann["caption"]))
        return
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4):
        raise TruthError(f"truth {uri}: {where} entry {n} needs a bbox [x, y, w, h]")
    if "utf8_string" in ann:
        legible = str(ann.get("legibility", "legible")) != "illegible"
        image.texts.append(TruthText(str(ann["utf8_string"]), xywh_to_box(bbox), legible))
        return
    category = categories.get(int(ann.get("category_id", -1)))
    if category is None:
        raise TruthError(f"truth {uri}: {where} entry {n} names category_id {ann.get('category_id')!r}, "
                         f"not in categories")
    image.objects.append(TruthObject(category.name, xywh_to_box(bbox), dict(ann.get("attributes") or {}),
                                     bool(ann.get("iscrowd", 0))))


def truth_to_coco(images: list[TruthImage], categories: list[TruthCategory], info: dict | None = None) -> dict:
    """The COCO object of `images` (ids as given); the inverse of parse_truth."""
    annotations, ann_id = [], 0
    by_name = {c.name: c.id for c in categories}
    for image in images:
        for obj in image.objects:
            ann_id += 1
            x, y, w, h = box_to_xywh(obj.bbox)
            entry = {"id": ann_id, "image_id": image.id, "category_id": by_name[obj.category],
                     "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(obj.iscrowd)}
            if obj.attributes:
                entry["attributes"] = obj.attributes
            annotations.append(entry)
        for text in image.texts:
            ann_id += 1
            annotations.append({"id": ann_id, "image_id": image.id, "bbox": box_to_xywh(text.bbox),
                                "utf8_string": text.text,
                                "legibility": "legible" if text.legible else "illegible"})
        for caption in image.captions:
            ann_id += 1
            annotations.append({"id": ann_id, "image_id": image.id, "caption": caption})
    coco_images = []
    for image in images:
        entry = {"id": image.id, "file_name": image.file_name, "width": image.width, "height": image.height}
        if image.key:
            entry["key"] = image.key
        coco_images.append(entry)
    coco_categories = [{"id": c.id, "name": c.name, "supercategory": "object",
                        **({"synonyms": list(c.synonyms)} if c.synonyms else {})} for c in categories]
    return {"info": info or {}, "images": coco_images, "categories": coco_categories, "annotations": annotations}


def write_truth(uri: str, coco: dict) -> None:
    """Write a truth file whole (storage.write_bytes: readers never see half of it)."""
    storage.write_bytes(uri, json.dumps(coco, ensure_ascii=False, indent=1).encode("utf-8"))
