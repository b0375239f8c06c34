"""Deterministic synthetic scenes: shapes and words on a background, with exact ground truth.

Everything random comes from the caller's `numpy.random.Generator`, so a seed fixes the
pixels and the ground truth. Boxes are measured from the drawn masks, not from the layout,
so they are tight around what is actually visible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from finecap.samples import captions, vocab
from finecap.samples.shapes import shape_mask
from finecap.samples.text import available_faces, word_mask

Box = tuple[int, int, int, int]
MIN_FONT_PX = 22  # PP-OCRv4 read 12/24 words at 12 px, 19/24 at 16 px, 23/24 at 20 and 24 px
MIN_COLOUR_DISTANCE = 110.0  # RGB distance between an object and every background colour


@dataclass(frozen=True)
class Background:
    kind: str  # "plain" | "gradient"
    colours: list[str]  # one name, or start and end of the gradient
    direction: str | None  # "vertical" (top to bottom) | "horizontal" (left to right) | None
    family: str  # "light" | "dark": which text colours contrast with it


@dataclass(frozen=True)
class SceneObject:
    """One shape. Boxes are [x1, y1, x2, y2] pixel edges (x2, y2 exclusive) and the same / size."""

    shape: str
    colour: str
    rgb: tuple[int, int, int]
    size: str
    bbox_px: Box
    bbox: tuple[float, float, float, float]
    position: str
    caption: str


@dataclass(frozen=True)
class SceneWord:
    """One rendered word; `rotation` is degrees counter-clockwise as drawn."""

    text: str
    colour: str
    rgb: tuple[int, int, int]
    font: str
    font_size: int
    rotation: float
    bbox_px: Box
    bbox: tuple[float, float, float, float]
    position: str
    caption: str


@dataclass
class Scene:
    image: Image.Image
    width: int
    height: int
    background: Background
    objects: list[SceneObject] = field(default_factory=list)
    words: list[SceneWord] = field(default_factory=list)
    caption: str = ""

    def to_record(self) -> dict:
        """The ground truth as plain JSON-able values (everything but the image)."""
        return {
            "width": self.width,
            "height": self.height,
            "caption": self.caption,
            "background": asdict(self.background),
            "objects": [_plain(asdict(o)) for o in self.objects],
            "words": [_plain(asdict(w)) for w in self.words],
        }


def sample_size(
    rng: np.random.Generator, base: tuple[int, int] = (640, 480), jitter: float = 0.15, portrait: float = 0.2
) -> tuple[int, int]:
    """A size near `base` with scale and aspect ratio varied by up to `jitter`, sometimes turned
    portrait, so native-resolution code sees uneven sides and both orientations."""
    scale = rng.uniform(1 - jitter, 1 + jitter)
    aspect = rng.uniform(1 - jitter, 1 + jitter)
    width = round(base[0] * scale * aspect**0.5)
    height = round(base[1] * scale / aspect**0.5)
    return (height, width) if rng.random() < portrait else (width, height)


def generate_scene(
    rng: np.random.Generator, width: int = 640, height: int = 480, max_objects: int = 4, max_words: int = 3
) -> Scene:
    """Draw 1..`max_objects` shapes and 1..`max_words` words at non-overlapping places.

    Fewer may be drawn when they do not fit (small images); the ground truth lists what was drawn.
    """
    if min(width, height) < 96:
        raise ValueError(f"scenes need at least 96 px per side, got {width}x{height}")
    background, canvas = _background(rng, width, height)
    layout = _Layout(rng, width, height)
    n_words = int(rng.integers(1, max_words + 1))
    words = [w for w in (_draw_word(rng, canvas, background, layout) for _ in range(n_words)) if w]
    n_objects = int(rng.integers(1, max_objects + 1))
    objects = [o for o in (_draw_object(rng, canvas, background, layout) for _ in range(n_objects)) if o]
    third = height / 3
    reading = sorted(objects, key=lambda o: ((o.bbox_px[1] + o.bbox_px[3]) // 2 // third, o.bbox_px[0]))
    sentences = [
        captions.word_sentence(w.text, w.colour, _where(w.bbox_px, width, height), w.rotation != 0)
        for w in words
    ]
    background_text = captions.background_phrase(background.kind, background.colours, background.direction)
    text = captions.global_caption(background_text, [o.caption for o in reading], sentences)
    return Scene(canvas, width, height, background, reading, words, text)


class _Layout:
    """Rejection sampling of non-overlapping boxes; reserved boxes include their gaps."""

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        self.rng, self.width, self.height = rng, width, height
        self.margin = max(4, round(0.03 * min(width, height)))
        self.gap = max(6, round(0.04 * min(width, height)))
        self.taken: list[Box] = []
        self.used: set[str] = set()  # words and colour+shape pairs already in the scene

    def place(self, w: int, h: int, pad: int, tries: int = 60) -> tuple[int, int] | None:
        """Top-left of a free w x h box, kept `pad` (plus the gap) away from everything else."""
        x_max, y_max = self.width - self.margin - w, self.height - self.margin - h
        if x_max < self.margin or y_max < self.margin:
            return None
        for _ in range(tries):
            x = int(self.rng.integers(self.margin, x_max + 1))
            y = int(self.rng.integers(self.margin, y_max + 1))
            box = (x - pad - self.gap, y - pad - self.gap, x + w + pad + self.gap, y + h + pad + self.gap)
            if not any(_overlaps(box, other) for other in self.taken):
                self.taken.append((x - pad, y - pad, x + w + pad, y + h + pad))
                return x, y
        return None


def _draw_word(
    rng: np.random.Generator, canvas: Image.Image, bg: Background, layout: _Layout
) -> SceneWord | None:
    text = vocab.apply_case(str(rng.choice(vocab.WORDS)), str(rng.choice(vocab.CASES)))
    faces = available_faces()
    face = faces[int(rng.integers(len(faces)))]
    palette = vocab.TEXT_ON_LIGHT if bg.family == "light" else vocab.TEXT_ON_DARK
    colour = str(rng.choice(list(palette)))
    tilted = rng.random() < 0.35
    angle = round(float(rng.uniform(2.0, 7.0)) * float(rng.choice([-1, 1])), 1) if tilted else 0.0
    short = min(layout.width, layout.height)
    size = max(MIN_FONT_PX, round(rng.uniform(0.075, 0.13) * short))
    if text.lower() in layout.used:
        return None
    while size >= MIN_FONT_PX:
        mask = word_mask(text, face, size, angle)
        spot = layout.place(mask.width, mask.height, pad=size // 2) if mask.width < layout.width else None
        if spot:
            layout.used.add(text.lower())
            canvas.paste(palette[colour], (*spot, spot[0] + mask.width, spot[1] + mask.height), mask)
            box = (spot[0], spot[1], spot[0] + mask.width, spot[1] + mask.height)
            return SceneWord(
                text, colour, palette[colour], face, size, angle, box, _normalise(box, canvas.size),
                vocab.position_of(box, *canvas.size)[0], captions.word_caption(text, colour),
            )  # fmt: skip
        size = int(size * 0.85)
    return None


def _draw_object(
    rng: np.random.Generator, canvas: Image.Image, bg: Background, layout: _Layout
) -> SceneObject | None:
    shape = str(rng.choice(vocab.SHAPES))
    colour = str(rng.choice(_object_colours(bg)))
    size = str(rng.choice(vocab.SIZES))
    short = min(layout.width, layout.height)
    side = round(short * (rng.uniform(0.10, 0.15) if size == "small" else rng.uniform(0.22, 0.32)))
    if f"{colour} {shape}" in layout.used:
        return None
    spot = layout.place(side, side, pad=0)
    if spot is None:
        return None
    layout.used.add(f"{colour} {shape}")
    mask = shape_mask(shape, side)
    rgb = vocab.OBJECT_COLOURS[colour]
    canvas.paste(rgb, (*spot, spot[0] + side, spot[1] + side), mask)
    x1, y1, x2, y2 = mask.getbbox()  # type: ignore[misc]  # shapes always have ink
    box = (spot[0] + x1, spot[1] + y1, spot[0] + x2, spot[1] + y2)
    position, where = vocab.position_of(box, *canvas.size)
    return SceneObject(
        shape, colour, rgb, size, box, _normalise(box, canvas.size), position,
        captions.object_caption(size, colour, shape, where),
    )  # fmt: skip


def _background(rng: np.random.Generator, width: int, height: int) -> tuple[Background, Image.Image]:
    family = "light" if rng.random() < 0.6 else "dark"
    palette = vocab.LIGHT_BACKGROUNDS if family == "light" else vocab.DARK_BACKGROUNDS
    names = [str(n) for n in rng.choice(list(palette), size=2, replace=False)]
    if rng.random() < 0.5:
        plain = Image.new("RGB", (width, height), palette[names[0]])
        return Background("plain", names[:1], None, family), plain
    direction = "vertical" if rng.random() < 0.5 else "horizontal"
    steps = height if direction == "vertical" else width
    t = np.linspace(0.0, 1.0, steps)[:, None]
    ramp = np.rint((1 - t) * np.array(palette[names[0]]) + t * np.array(palette[names[1]])).astype(np.uint8)
    if direction == "vertical":
        pixels = np.broadcast_to(ramp[:, None, :], (height, width, 3))
    else:
        pixels = np.broadcast_to(ramp[None, :, :], (height, width, 3))
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    return Background("gradient", names, direction, family), image


def _object_colours(bg: Background) -> list[str]:
    """Palette colours far enough from every background colour to stand out (and be counted)."""
    family = vocab.LIGHT_BACKGROUNDS if bg.family == "light" else vocab.DARK_BACKGROUNDS
    ends = [np.array(family[name]) for name in bg.colours]
    return [
        name
        for name, rgb in vocab.OBJECT_COLOURS.items()
        if min(float(np.linalg.norm(np.subtract(rgb, end))) for end in ends) >= MIN_COLOUR_DISTANCE
    ]


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _normalise(box: Box, size: tuple[int, int]) -> tuple[float, float, float, float]:
    w, h = size
    return (round(box[0] / w, 6), round(box[1] / h, 6), round(box[2] / w, 6), round(box[3] / h, 6))


def _where(box: Box, width: int, height: int) -> str:
    return vocab.position_of(box, width, height)[1]


def _plain(value):
    """Tuples to lists, recursively, so records compare equal after a JSON round trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
