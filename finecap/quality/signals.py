"""Quality signals without ground truth: the rule functions behind the quality stage.

Each signal compares what one model wrote with what another found in the same image, so it
needs nothing but the row (docs/quality.md):

* grounding rate: of the noun phrases a caption mentions, the share a detector box grounds (or,
  for text the caption names, that OCR read). A captioner that invents objects leaves phrases
  the detector cannot find.
* OCR agreement: quoted strings in a caption that OCR also read (a quote OCR did not find is
  likely invented), and OCR words no caption mentions (text the captioner ignored).
* repetition: the share of a caption's word 3-grams that repeat an earlier one; decoding loops
  ("a red a red a red") score high, ordinary prose near 0.
* length: words of the shortest and the longest caption.
* region agreement: whether a region caption names what the region holds (its detector
  category or phrase, or the text OCR read in it).

Everything here is pure: lists of plain dicts in, plain values out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from finecap.config_quality import QualityConfig
from finecap.quality.vocabulary import plural_forms, word_tokens

# "…", “…”, ‘…’ and '…' when the apostrophes are not inside a word ("the cat's 'milk'").
_QUOTE = re.compile(r"\"([^\"]{1,200})\"|“([^”]{1,200})”|‘([^’]{1,200})’|(?<![0-9A-Za-z])'([^']{1,200})'(?![0-9A-Za-z])")


def words(text: str | None) -> list[str]:
    """Case-folded words, as the ground-truth metrics count them (vocabulary.word_tokens)."""
    return word_tokens(text or "")


def repetition(text: str | None, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier n-gram of the same text (0 for short texts)."""
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def quoted(text: str | None) -> list[str]:
    """The strings a caption quotes, normalised (see `normalise`), empty ones dropped."""
    found = (next(g for g in match.groups() if g is not None) for match in _QUOTE.finditer(text or ""))
    return [q for q in (normalise(s) for s in found) if q]


def normalise(text: str | None) -> str:
    """Words joined by single spaces: what two spellings of the same text share."""
    return " ".join(words(text))


def names(text: str | None, phrase: str | None) -> bool:
    """Whether `text` mentions `phrase` as whole words, singular or plural ("red squares" names
    "red square" and the other way round)."""
    target = normalise(phrase)
    if not target:
        return False
    singular = [target[:-1]] if target.endswith("s") else []  # a phrase spaCy kept plural
    padded = f" {normalise(text)} "
    return any(f" {form} " in padded for form in (target, *singular, *plural_forms(target)))


def caption_phrases(text: str | None, phrases: Iterable[dict]) -> list[dict]:
    """The image's phrases ({phrase, category}) this caption mentions."""
    return [p for p in phrases if names(text, p["phrase"])]


def grounded(phrase: dict, regions: Iterable[dict], min_score: float, ocr_text: str | None = None) -> bool:
    """Whether the image shows the phrase: a detector region for it (or for its category:
    detection keeps one box per object even when two phrases ground it) with score >=
    `min_score`, or, for text a caption names ("the word 'bottle'"), OCR read its words
    (`ocr_text`: the image's OCR words, normalised and space-padded)."""
    for r in regions:
        if r.get("origin") != "detector" or (r.get("score") or 0.0) < min_score:
            continue
        if r.get("phrase") == phrase["phrase"] or (phrase.get("category") and r.get("category") == phrase["category"]):
            return True
    return bool(ocr_text) and f" {normalise(phrase['phrase'])} " in ocr_text


def region_agreement(region: dict) -> bool | None:
    """Whether a region's caption names what the region holds; None when there is nothing to judge
    (no caption, or a caption that is OCR's own text put there by the pipeline)."""
    caption = region.get("caption")
    if not caption:
        return None
    text = region.get("ocr_text")
    if text:
        if normalise(caption) == normalise(text):
            return None  # captioned with its text: agreement by construction
        return normalise(text) in normalise(caption)
    if region.get("origin") != "detector":
        return None
    return any(names(caption, p) for p in (region.get("category"), region.get("phrase")) if p)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def caption_signals(text: str, phrases: list[dict] | None, regions: list[dict], detected: bool,
                    ocr_text: str | None, min_score: float) -> dict:
    """One caption's signals. `phrases` is None when the phrases stage did not run, `detected`
    says whether detect ran, `ocr_text` (the image's OCR words, normalised, space-padded) is None when OCR did not run."""
    mentioned = caption_phrases(text, phrases) if phrases is not None else None
    found = (sum(grounded(p, regions, min_score, ocr_text) for p in mentioned)
             if mentioned is not None and detected else None)
    quotes = quoted(text)
    # Whole words only (`ocr_text` is padded with spaces): the quote "cat" is not in "concatenate".
    supported = sum(f" {q} " in ocr_text for q in quotes) if ocr_text is not None else None
    return {
        "words": len(words(text)),
        "repetition": repetition(text),
        "phrases": len(mentioned) if mentioned is not None else None,
        "grounded_phrases": found,
        "grounding_rate": _share(found, len(mentioned)) if found is not None else None,
        "quotes": len(quotes),
        "quotes_supported": supported,
    }


def row_signals(captions: list[dict], phrases: list[dict] | None, regions: list[dict], detected: bool,
                ocr_ran: bool, min_score: float) -> tuple[dict, list[dict], list[bool | None]]:
    """(row signals without flags, each caption's signals, each region's agreement)."""
    ocr_words = [w for r in regions if r.get("origin") == "ocr" for w in words(r.get("ocr_text"))]
    ocr_text = f" {' '.join(ocr_words)} " if ocr_ran else None
    per_caption = [caption_signals(c["text"], phrases, regions, detected, ocr_text, min_score) for c in captions]
    agreements = [region_agreement(r) for r in regions]
    judged = [a for a in agreements if a is not None]
    caption_words = {w for c in captions for w in words(c["text"])}
    grounded_all = (sum(grounded(p, regions, min_score, ocr_text) for p in phrases)
                    if phrases is not None and detected else None)
    quotes = sum(s["quotes"] for s in per_caption)
    supported = sum(s["quotes_supported"] or 0 for s in per_caption) if ocr_ran else None
    row = {
        "phrases": len(phrases) if phrases is not None else None,
        "grounded_phrases": grounded_all,
        "grounding_rate": _share(grounded_all, len(phrases)) if grounded_all is not None else None,
        "ocr_quote_support": _share(supported, quotes) if supported is not None else None,
        "ocr_ignored": _share(sum(w not in caption_words for w in ocr_words), len(ocr_words)),
        "repetition": max((s["repetition"] for s in per_caption), default=None),
        "min_caption_words": min((s["words"] for s in per_caption), default=None),
        "max_caption_words": max((s["words"] for s in per_caption), default=None),
        "region_agreement": _share(sum(judged), len(judged)),
    }
    return row, per_caption, agreements


# flag name, signal, threshold key, True when the value breaks the threshold, comparison shown
_RULES = (
    ("low_grounding", "grounding_rate", "min_grounding_rate", lambda v, t: v < t, "<"),
    ("repetitive", "repetition", "max_repetition", lambda v, t: v > t, ">"),
    ("short_caption", "min_caption_words", "min_caption_words", lambda v, t: v < t, "<"),
    ("long_caption", "max_caption_words", "max_caption_words", lambda v, t: v > t, ">"),
    ("unsupported_quote", "ocr_quote_support", "min_ocr_quote_support", lambda v, t: v < t, "<"),
    ("ignored_ocr_text", "ocr_ignored", "max_ocr_ignored", lambda v, t: v > t, ">"),
    ("region_disagreement", "region_agreement", "min_region_agreement", lambda v, t: v < t, "<"),
)
FLAGS = tuple(rule[0] for rule in _RULES)


def broken_thresholds(row: dict, cfg: QualityConfig) -> list[tuple[str, str]]:
    """(flag, detail) for each `quality.*` threshold the row's signals break, in rule order."""
    broken = []
    for flag, signal, key, breaks, sign in _RULES:
        threshold, value = getattr(cfg, key), row.get(signal)
        if threshold is not None and value is not None and breaks(value, threshold):
            broken.append((flag, f"{signal} {value:.3g} {sign} quality.{key}={threshold}"))
    return broken
