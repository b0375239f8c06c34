"""Caption hygiene: clean chat artefacts off a generation and say whether it is degenerate.

Pure functions on strings, so every rule is unit-tested on crafted text. A degenerate caption
is never written; the caption stage retries it with another captioner or rejects the row,
as `caption.hygiene.on_degenerate` says.
"""

from __future__ import annotations

import re
from collections import Counter

from finecap.config import HygieneConfig

# Role prefixes, special tokens and wrappers chat models leave around an answer.
_SPECIAL_TOKENS = re.compile(r"<\|[a-z_]+\|>|<end_of_utterance>|</?s>|<image>|<fake_token_around_image>")
_ROLE_PREFIX = re.compile(r"^\s*(assistant|answer|caption|description)\s*:\s*", re.IGNORECASE)
_MARKDOWN_LABEL = re.compile(r"^\s*\*\*[^*\n]{1,40}:?\*\*:?\s*")
_REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i am unable|i'm unable|as an ai\b|i do not see any image"
    r"|there is no image)",
    re.IGNORECASE,
)
# Control characters (escape sequences and the like) that models sometimes emit; keeps \n and \t.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TERMINAL = (".", "!", "?", '"', "'", ")", "”", "’")


def clean_caption(text: str) -> str:
    """Strip special tokens, role prefixes, markdown labels and wrapping quotes."""
    text = _SPECIAL_TOKENS.sub("", text)
    text = _CONTROL.sub("", text).strip()
    for pattern in (_ROLE_PREFIX, _MARKDOWN_LABEL):
        text = pattern.sub("", text, count=1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return re.sub(r"[ \t]+", " ", text)


# Why a generation gave no caption (`caption_or_reason`); also the keys of the shard manifests'
# `region_caption_failures` (the regions stage adds `engine_error` and `no_ocr_text`).
EMPTY_GENERATION = "empty_generation"  # the model answered nothing but whitespace
EMPTY_AFTER_HYGIENE = "empty_after_hygiene"  # only control characters, special tokens or a label
REFUSAL = "refusal"  # "I'm sorry, I can't ...": never a caption


def caption_or_reason(raw: str) -> tuple[str, str | None]:
    """The cleaned caption and None, or "" and why `raw` gives no caption at all.

    The rules every caption meets whatever its stage's hygiene settings: the settings-dependent
    ones (repetition, truncation, length) are `degenerate_reason`'s. Measured on the sample
    build (issue 17): the 5 region captions the tiny VLM left empty were 23-24 ESC characters,
    so `empty_after_hygiene` is told apart from a model that answered nothing.
    """
    if not raw.strip():
        return "", EMPTY_GENERATION
    text = clean_caption(raw)
    if not text:
        return "", EMPTY_AFTER_HYGIENE
    if _REFUSAL.match(text):
        return "", REFUSAL
    return text, None


def repetition(text: str, min_count: int = 4) -> float:
    """Share of the words covered by the most frequent word n-gram (n = 1..8) seen >= min_count
    times: near 0 for varied prose (even "the" covers little), large for a loop."""
    words = text.lower().split()
    worst = 0.0
    for n in range(1, 9):
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        if not grams:
            break
        _, count = grams.most_common(1)[0]
        if count >= min_count:
            worst = max(worst, min(1.0, count * n / len(words)))
    return worst


def degenerate_reason(text: str, finish_reason: str | None, config: HygieneConfig) -> str | None:
    """None for a usable caption, else the reject reason (`empty`, `repetition`, ...)."""
    if not config.enabled:
        return "empty" if not text else None
    if not text:
        return "empty"
    if config.check_refusal and _REFUSAL.match(text):
        return "refusal"
    if config.check_repetition and repetition(text) > config.max_repetition:
        return "repetition"
    if config.check_truncation and finish_reason == "length" and not text.rstrip().endswith(_TERMINAL):
        return "truncated"
    if len(text) < config.min_chars:
        return "too_short"
    return None
