"""A small built-in English corpus of scene descriptions.

The tiny models have random weights, so their captions are noise; training their
tokenizers on scene-like English makes that noise decode to English subwords
(objects, colours, positions, text on signs) instead of byte soup. The corpus is
generated from fixed word lists in a fixed order, so it is identical on every run.
"""

from __future__ import annotations

import itertools

OBJECTS = tuple(
    "cat dog car bus bicycle person woman man child tree house window door chair table sofa "
    "lamp cup bottle book sign street boat bird horse flower phone laptop clock bag umbrella "
    "truck train bench kite ball plate bowl pizza apple".split()
)
COLOURS = tuple("red green blue yellow white black orange purple pink brown grey golden".split())
SIZES = tuple("small large tiny tall wide round square old new wooden".split())
PLACES = (
    "on the left",
    "on the right",
    "in the centre",
    "at the top",
    "at the bottom",
    "in the background",
    "in the foreground",
    "near the corner",
    "next to the wall",
    "under the table",
    "behind the fence",
    "in front of the building",
)
SETTINGS = (
    "in a kitchen",
    "on a busy street",
    "in a park",
    "at the beach",
    "in an office",
    "in a living room",
    "on a farm",
    "in a city square",
    "at night",
    "on a sunny day",
    "in the snow",
    "by the river",
)
ACTIONS = (
    "is sitting",
    "is standing",
    "is parked",
    "is lying",
    "is resting",
    "is waiting",
    "is hanging",
    "is leaning",
    "is floating",
    "is shown",
)
TEXTS = (
    "STOP",
    "OPEN",
    "EXIT",
    "SALE",
    "CAFE",
    "HOTEL",
    "PARKING",
    "WELCOME",
    "BUS 42",
    "MAIN ST",
    "NO ENTRY",
    "50% OFF",
    "PLATFORM 3",
    "FRESH BREAD",
    "CLOSED",
)

# Phrases prompts and captions use often; they must tokenize into few pieces.
PROMPTS = (
    "Describe this image.",
    "Describe this image in detail.",
    "Describe this image in one sentence.",
    "Describe the highlighted region of the image.",
    "Describe the object inside the box.",
    "What text is written in the image?",
    "Read the text in the image.",
    "List the objects you can see.",
    "Write a short caption for this photo.",
    "Write a detailed caption for this picture.",
    "You are a helpful assistant that describes images.",
    "User: Describe this image. Assistant: The image shows a scene.",
    "The image shows a scene with several objects.",
    "This photo was taken outdoors during the day.",
    "The picture contains text, objects and people.",
    "There is no visible text in this image.",
    "The region contains a single object.",
    "A close-up photo of a textured surface.",
    "A blurry photo taken from a moving car.",
    "An aerial view of a city with roads and buildings.",
)


_IRREGULAR = {"person": "people", "woman": "women", "man": "men", "child": "children"}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _plural(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    return word + ("es" if word.endswith(("s", "ch", "sh")) else "s")


def scene_sentences() -> list[str]:
    """Sentences about objects with colours, sizes, positions and settings."""
    out = []
    combos = itertools.product(range(len(OBJECTS)), range(len(COLOURS)))
    for o, c in combos:
        obj, colour = OBJECTS[o], COLOURS[c]
        size = SIZES[(o + c) % len(SIZES)]
        place = PLACES[(3 * o + c) % len(PLACES)]
        setting = SETTINGS[(o + 5 * c) % len(SETTINGS)]
        action = ACTIONS[(o * c) % len(ACTIONS)]
        other = OBJECTS[(o + c + 7) % len(OBJECTS)]
        match (o + c) % 4:
            case 0:
                out.append(f"{_article(size).capitalize()} {size} {colour} {obj} {action} {place}.")
            case 1:
                out.append(f"A photo of {_article(colour)} {colour} {obj} {setting}.")
            case 2:
                out.append(f"The {colour} {obj} {action} next to {_article(other)} {other} {place}.")
            case _:
                out.append(f"There are two {_plural(obj)} and one {colour} {other} {setting}.")
    return out


def text_sentences() -> list[str]:
    """Sentences about written text, so OCR-style captions have words to use."""
    out = []
    for i, text in enumerate(TEXTS):
        colour = COLOURS[i % len(COLOURS)]
        obj = ("sign", "banner", "poster", "board", "label")[i % 5]
        place = PLACES[i % len(PLACES)]
        out.append(f'A {colour} {obj} {place} reads "{text}".')
        out.append(f'The text "{text}" is written in {COLOURS[(i + 4) % len(COLOURS)]} letters.')
    return out


def corpus() -> list[str]:
    """The whole corpus, in a fixed order."""
    return [*PROMPTS, *scene_sentences(), *text_sentences()]
