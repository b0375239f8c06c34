"""Global-caption metrics against one image's truth: objects, colours, written words, counts.

Why these: a captioner's worst failure is naming what is not there (hallucination), then
missing what is; CHAIR (Rohrbach et al. 2018) measures the first per caption (CHAIR_s) and per
mention (CHAIR_i, here 1 - precision). The synthetic scenes also know every colour, word and
count, so a caption can be checked fact by fact. Categories are compared as sets per caption
(saying "circle" twice is one claim); the group's precision and recall are micro averages
(sums over captions), so long captions weigh by what they claim.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from finecap.quality.truth import TruthImage
from finecap.quality.vocabulary import (
    Mention,
    Vocabulary,
    attribute_pairs_of,
    mention_counts,
    object_colour,
    stated_counts_of,
    word_tokens,
)


@dataclass(frozen=True)
class CaptionScore:
    """One caption's claims checked against one truth image (counts, so groups can be summed)."""

    words: int
    mentioned: tuple[str, ...]  # categories the caption names (sorted)
    present: tuple[str, ...]  # categories the image holds (sorted)
    object_tp: int
    object_fp: int
    object_fn: int
    attribute_tp: int
    attribute_fp: int
    attribute_fn: int
    truth_words: int  # distinct legible words written in the image
    words_found: int  # of those, how many the caption contains
    counts_stated: int  # categories whose count the caption states (and the truth can judge)
    counts_right: int

    @property
    def absent(self) -> tuple[str, ...]:
        """Categories named but not in the image: the hallucinations."""
        return tuple(c for c in self.mentioned if c not in self.present)


def score_caption(text: str, image: TruthImage, vocab: Vocabulary) -> CaptionScore:
    """Check one caption's object, colour, word and count claims against `image`.

    A (colour, category) pair is judged only for categories the truth gives colours for: a
    pair naming an absent category is already an object error, and counting it again would
    punish one mistake twice. Counts of a category with a crowd annotation are not judged
    (a crowd box has no count).

    An absent category whose name is written in the image is read, not hallucinated, and is
    left out: the synthetic short captions list the written words unquoted ("Words: circle,
    Rabbit."), and 21 of 2,000 scenes wrote "circle"; a real sign reading "PIZZA" is the same.
    """
    occurrences = vocab.occurrences(text)  # one scan, read three ways below
    present = {obj.category for obj in image.objects}
    written = {vocab.canonical(t.text) for t in image.texts if t.legible}
    mentioned = {c for c in mention_counts(occurrences) if c in present or c not in written}
    truth_pairs = {(colour, obj.category) for obj in image.objects if (colour := object_colour(obj))}
    coloured = {category for _, category in truth_pairs}
    claimed = attribute_pairs_of(occurrences)
    judged = {pair for pair in claimed if pair[1] in coloured}
    found, total = _words_found(text, image)
    stated, right = _counts(occurrences, image)
    return CaptionScore(
        words=len(word_tokens(text)),
        mentioned=tuple(sorted(mentioned)),
        present=tuple(sorted(present)),
        object_tp=len(mentioned & present),
        object_fp=len(mentioned - present),
        object_fn=len(present - mentioned),
        attribute_tp=len(judged & truth_pairs),
        attribute_fp=len(judged - truth_pairs),
        attribute_fn=len(truth_pairs - claimed),
        truth_words=total,
        words_found=found,
        counts_stated=stated,
        counts_right=right,
    )


def _words_found(text: str, image: TruthImage) -> tuple[int, int]:
    """(found, total) over the image's distinct legible words, matched as whole case-folded words.

    Distinct, because a caption that reads "STOP" once has read both stop signs' text.
    """
    caption = word_tokens(text)
    wanted = {tuple(words) for t in image.texts if t.legible and (words := word_tokens(t.text))}
    found = sum(1 for words in wanted if _contains(caption, words))
    return found, len(wanted)


def _contains(tokens: list[str], words: tuple[str, ...]) -> bool:
    n = len(words)
    return any(tuple(tokens[i : i + n]) == words for i in range(len(tokens) - n + 1))


def _counts(occurrences: list[Mention], image: TruthImage) -> tuple[int, int]:
    """(stated, right): categories whose stated count can be judged, and those that match."""
    truth = Counter(obj.category for obj in image.objects)
    crowded = {obj.category for obj in image.objects if obj.iscrowd}
    judged = {c: n for c, n in stated_counts_of(occurrences).items() if c not in crowded}
    return len(judged), sum(1 for c, n in judged.items() if truth.get(c, 0) == n)


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Unique n-grams / all n-grams over a group's captions (n-grams never span two captions).

    Low values mean a captioner says the same thing about every image; None when the group
    has no n-gram at all.
    """
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = word_tokens(text)
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else None


def aggregate_captions(scores: Sequence[CaptionScore], texts: Sequence[str]) -> dict:
    """A group's caption metrics (one captioner, revision and prompt): micro-averaged object
    precision/recall/F1, CHAIR_s as hallucination_rate, colour, word and count accuracy,
    length and distinct-n of `texts`. A metric whose denominator is 0 is None, not 0: "no
    claims" is not "all claims wrong".
    """
    tp, fp, fn = (sum(getattr(s, f"object_{k}") for s in scores) for k in ("tp", "fp", "fn"))
    a_tp, a_fp, a_fn = (sum(getattr(s, f"attribute_{k}") for s in scores) for k in ("tp", "fp", "fn"))
    return {
        "captions": len(scores),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "hallucination_rate": _ratio(sum(1 for s in scores if s.object_fp), len(scores)),
        "attribute_precision": _ratio(a_tp, a_tp + a_fp),
        "attribute_recall": _ratio(a_tp, a_tp + a_fn),
        "word_recall": _ratio(sum(s.words_found for s in scores), sum(s.truth_words for s in scores)),
        "count_accuracy": _ratio(sum(s.counts_right for s in scores), sum(s.counts_stated for s in scores)),
        "mean_words": _ratio(sum(s.words for s in scores), len(scores)),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
    }


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None
