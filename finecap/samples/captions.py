"""Captions composed from a scene's ground truth.

Templated on purpose: every fact in a caption (count, colour, shape, size, position, word)
is a ground-truth field, so a benchmark can check a model's caption against it.
"""

from __future__ import annotations

from finecap.samples.vocab import NUMBER_WORDS

GRADIENT_ENDS = {"vertical": ("at the top", "at the bottom"), "horizontal": ("on the left", "on the right")}


def with_article(phrase: str) -> str:
    """'a red circle', 'an orange star' (by the first letter: the vocabulary has no silent h)."""
    return f"{'an' if phrase[:1].lower() in 'aeiou' else 'a'} {phrase}"


def object_caption(size: str, colour: str, shape: str, where: str) -> str:
    """'a large red circle in the top left'."""
    return f"{with_article(size)} {colour} {shape} {where}"


def word_caption(text: str, colour: str) -> str:
    """Like "the word 'garden' in black"."""
    return f"the word '{text}' in {colour}"


def background_phrase(kind: str, colours: list[str], direction: str | None) -> str:
    """'A light blue background' or 'A background fading from navy at the top to maroon at the bottom'."""
    if kind == "plain":
        return f"A {colours[0]} background"
    start, end = GRADIENT_ENDS[direction or "vertical"]
    return f"A background fading from {colours[0]} {start} to {colours[1]} {end}"


def count_phrase(n: int, noun: str) -> str:
    """'one shape', 'three shapes'."""
    number = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    return f"{number} {noun}{'' if n == 1 else 's'}"


def join_and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def word_sentence(text: str, colour: str, where: str, tilted: bool) -> str:
    """Like "The word 'garden' is written in black in the centre, slightly tilted."."""
    return f"The word '{text}' is written in {colour} {where}{', slightly tilted' if tilted else ''}."


def global_caption(background: str, objects: list[str], words: list[str]) -> str:
    """Background and shapes in one sentence, then one sentence per word.

    `objects` are object captions, `words` are `word_sentence`s, both in reading order.
    """
    # A gradient phrase ends in a position ("... at the bottom"): a comma keeps "with" off it.
    background = background if background.endswith("background") else f"{background},"
    if objects:
        first = f"{background} with {count_phrase(len(objects), 'shape')}: {join_and(objects)}."
    else:
        first = f"{background} with no shapes."
    return " ".join([first, *words])
