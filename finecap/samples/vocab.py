"""The fixed vocabulary scenes are drawn from.

Everything a caption can say lives here, so ground truth and captions never disagree and a
benchmark can enumerate the label space. Colours are named sRGB triples picked to stay
distinguishable from each other; changing any value changes every generated image.
"""

from __future__ import annotations

RGB = tuple[int, int, int]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "hexagon")

OBJECT_COLOURS: dict[str, RGB] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 225),
    "yellow": (250, 215, 40),
    "orange": (250, 140, 30),
    "purple": (140, 60, 190),
    "pink": (245, 120, 185),
    "brown": (135, 85, 40),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}

# Backgrounds come in two families so one text colour contrasts with the whole image:
# gradients only mix colours of the same family.
LIGHT_BACKGROUNDS: dict[str, RGB] = {
    "light grey": (222, 222, 222),
    "cream": (250, 242, 215),
    "light blue": (200, 225, 248),
    "pale green": (212, 240, 212),
    "pale pink": (250, 222, 230),
}
DARK_BACKGROUNDS: dict[str, RGB] = {
    "dark grey": (52, 52, 58),
    "navy": (22, 32, 82),
    "dark green": (22, 72, 42),
    "dark purple": (62, 24, 74),
    "maroon": (92, 22, 26),
}

TEXT_ON_LIGHT: dict[str, RGB] = {"black": (0, 0, 0), "dark blue": (20, 30, 120), "dark red": (130, 10, 20)}
TEXT_ON_DARK: dict[str, RGB] = {
    "white": (255, 255, 255),
    "yellow": (255, 230, 80),
    "light grey": (215, 215, 215),
}

SIZES: tuple[str, ...] = ("small", "large")

# Common English words of 4-10 letters. No word starts with i or l (Title case "I"/"l" look
# alike in sans fonts) and none is spelt only with letters whose capitals look like the small
# letters (c, o, s, v, w, x, z), so the case an OCR model reads is decidable.
# fmt: off
WORDS: tuple[str, ...] = (
    "apple", "autumn", "basket", "beach", "bicycle", "bird", "blanket", "bottle", "bread", "bridge",
    "bright", "butter", "camera", "candle", "castle", "chair", "cherry", "circle", "cloud", "coffee",
    "cotton", "country", "dance", "desert", "dinner", "doctor", "dragon", "dream", "engine", "evening",
    "family", "farmer", "feather", "field", "flower", "forest", "friend", "garden", "giant", "glass",
    "golden", "grape", "green", "guitar", "hammer", "harbor", "honey", "horse", "house", "hunter",
    "jacket", "jungle", "kettle", "kitchen", "market", "meadow", "melon", "mirror", "monkey", "morning",
    "mountain", "music", "number", "ocean", "orange", "garage", "paper", "parade", "pencil", "people",
    "pepper", "picture", "planet", "pocket", "potato", "purple", "puzzle", "rabbit", "rainbow", "record",
    "river", "rocket", "saddle", "school", "season", "shadow", "silver", "simple", "sister", "spring",
    "station", "street", "summer", "sunday", "table", "thunder", "ticket", "tiger", "tomato", "travel",
    "tunnel", "turtle", "umbrella", "valley", "velvet", "village", "violet", "wagon", "water", "window",
    "winter", "wonder", "yellow", "zebra", "anchor", "barn", "cake", "door", "fish", "gate",
    "hand", "kite", "moon", "nest", "road", "ship", "tree", "wind", "yard", "harvest",
    "blossom", "compass", "elephant", "festival", "keyboard", "notebook", "sandwich", "treasure",
    "waterfall", "adventure", "chocolate", "pineapple",
)
# fmt: on

CASES: tuple[str, ...] = ("lower", "upper", "title")

NUMBER_WORDS: tuple[str, ...] = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# (row, column) in thirds of the image -> how a caption says where something is.
POSITIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("top", "left"): ("top left", "in the top left"),
    ("top", "centre"): ("top", "at the top"),
    ("top", "right"): ("top right", "in the top right"),
    ("middle", "left"): ("left", "on the left"),
    ("middle", "centre"): ("centre", "in the centre"),
    ("middle", "right"): ("right", "on the right"),
    ("bottom", "left"): ("bottom left", "in the bottom left"),
    ("bottom", "centre"): ("bottom", "at the bottom"),
    ("bottom", "right"): ("bottom right", "in the bottom right"),
}


def position_of(bbox: tuple[int, int, int, int], width: int, height: int) -> tuple[str, str]:
    """(short name, caption phrase) of a box's centre in a 3x3 grid over the image."""
    cx = (bbox[0] + bbox[2]) / 2 / width
    cy = (bbox[1] + bbox[3]) / 2 / height
    column = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    return POSITIONS[(row, column)]


def apply_case(word: str, case: str) -> str:
    """The word as drawn: lower, UPPER or Title case."""
    return {"lower": word.lower(), "upper": word.upper(), "title": word.title()}[case]
