"""What a caption says about objects: categories, colours and counts, read against a vocabulary.

The caption metrics compare what a caption claims with the truth, so they need the claims as
truth categories: "two red squares" is {"square": 2} and the pair ("red", "square"). A vocabulary
maps every surface form a caption may use (the category name, its synonyms, their plurals) to
the truth category, and each colour value to its spellings. Matching is on whole words, longest
form first, so "traffic light" wins over "light" and "light blue" over "blue".

Three things a plain word search gets wrong, and this module does not:

* quoted text is what an image *says*, not what it shows: in "the word 'circle' is written in
  black" there is no circle, so quoted spans are skipped (the words metric reads them instead);
* negation: "a table with no chairs" mentions no chair (and states a count of 0);
* a colour word that is also a category ("orange") before another category is an adjective:
  "an orange cat" mentions a cat, not an orange.

A count is stated by a number word or digit ("a", "one".."twelve", "2", "no") directly before
the category, with only size, shade and colour words between ("a small red square"). The counts
of one category in a caption add up: the synthetic scenes list "a red circle and a blue circle"
for two circles. (A caption that says "two dogs: a brown dog and a white dog" states four; rare
enough in practice to keep the rule this simple.)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from finecap.errors import UserError
from finecap.quality.truth import Truth, TruthObject, read_json

# Plurals the s/es/ies rules miss; the regular forms are generated as well ("persons", "fishes").
IRREGULAR_PLURALS: dict[str, tuple[str, ...]] = {
    "person": ("people",), "man": ("men",), "woman": ("women",), "child": ("children",),
    "mouse": ("mice",), "goose": ("geese",), "tooth": ("teeth",), "foot": ("feet",),
    "sheep": ("sheep",), "fish": ("fish",), "deer": ("deer",), "ox": ("oxen",),
    "knife": ("knives",), "leaf": ("leaves",), "wolf": ("wolves",), "shelf": ("shelves",),
    "loaf": ("loaves",), "half": ("halves",), "calf": ("calves",), "scarf": ("scarves",),
    "life": ("lives",), "wife": ("wives",), "cactus": ("cacti",), "fungus": ("fungi",),
}  # fmt: skip
SIZE_WORDS = frozenset({"small", "large", "big", "little", "tiny", "huge", "medium"})
SHADE_WORDS = frozenset({"light", "dark", "pale", "bright", "deep"})
# Only to read "an orange cat" as a cat when the truth has no colours (COCO instances):
# these never become attribute claims, which need the truth's own colour values.
BASIC_COLOURS = frozenset({
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "white", "black",
    "grey", "gray", "violet", "silver", "gold", "golden",
})  # fmt: skip
COLOUR_SPELLINGS = {"grey": "gray", "gray": "grey"}
NUMBER_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "no": 0, "zero": 0,
}  # fmt: skip
NEGATIONS = frozenset({"without"})  # "no" and "zero" are numbers (0) that negate too

_QUOTED = re.compile(r"(?<!\w)(?:'[^'\n]+'|\"[^\"\n]+\"|“[^”\n]+”)(?!\w)")  # after ‘’ became '
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_INNER_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")


class VocabularyError(UserError):
    """A synonyms file or mapping that cannot be used (one line naming the file and the key)."""


def plural_forms(name: str) -> tuple[str, ...]:
    """Plurals of a (possibly multi-word) name: its last word takes s, es or ies, plus irregulars.

    Over-generating is harmless ("potatos" never occurs in a caption) and under-generating loses
    real mentions, so every rule that may apply adds its form.
    """
    *head, last = name.casefold().split()
    forms: list[str] = list(IRREGULAR_PLURALS.get(last, ()))
    if last.endswith("man") and last not in IRREGULAR_PLURALS:
        forms.append(last[:-3] + "men")  # fireman -> firemen (and "humans" below)
    if len(last) > 1 and last.endswith("y") and last[-2] not in "aeiou":
        forms.append(last[:-1] + "ies")
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        forms.append(last + "es")
    else:
        forms.append(last + "s")
        if last.endswith("o"):
            forms.append(last + "es")
    prefix = " ".join(head) + " " if head else ""
    return tuple(dict.fromkeys(prefix + form for form in forms))


def colour_forms(value: str) -> tuple[str, ...]:
    """Spellings of a colour value: itself and grey/gray swapped in any word."""
    words = value.casefold().split()
    swapped = [COLOUR_SPELLINGS.get(w, w) for w in words]
    return tuple(dict.fromkeys([" ".join(words), " ".join(swapped)]))


def word_tokens(text: str) -> list[str]:
    """Case-folded words of a text (apostrophes kept inside words), quotes included.

    What word counts, distinct-n and the search for the image's written words use.
    """
    return _WORD.findall(text.casefold().replace("’", "'"))


def object_colour(obj: TruthObject) -> str | None:
    """A truth object's colour attribute ("colour", or the US "color" other tools write)."""
    value = obj.attributes.get("colour", obj.attributes.get("color"))
    return str(value) if value else None


@dataclass(frozen=True)
class Mention:
    """One occurrence of a category in a text, with what stands right before it."""

    category: str
    number: int | None  # the stated count, when a number agrees with the form ("a dogs" states none)
    negated: bool  # "no dogs", "without a dog": not a mention; states a count of 0
    colour: str | None  # a truth colour value right before the category


@dataclass(frozen=True)
class _Form:
    category: str
    singular: bool
    plural: bool


@dataclass(frozen=True)
class Vocabulary:
    """Truth categories and colour values with the surface forms a caption may use for them.

    Make one with `build` or `from_truth`: they also index the forms the scans look up.
    """

    categories: dict[str, tuple[str, ...]]  # category -> lower-case forms (name, synonyms, plurals)
    colours: dict[str, tuple[str, ...]] = field(default_factory=dict)  # colour value -> forms
    _category_forms: dict[tuple[str, ...], _Form] = field(init=False, repr=False, compare=False)
    _colour_forms: dict[tuple[str, ...], str] = field(init=False, repr=False, compare=False)
    _longest: int = field(init=False, repr=False, compare=False)

    @classmethod
    def build(cls, categories: Mapping[str, Iterable[str]], colours: Iterable[str] = ()) -> Vocabulary:
        """A vocabulary of categories (name -> synonyms) and colour values, with every form.

        Where two categories share a form, a category's own name beats another's synonym, then
        the first category in sorted order wins, so the outcome never depends on input order.
        """
        names = sorted(categories)
        synonyms = {name: [s for s in categories[name] if s.strip()] for name in names}
        forms: dict[tuple[str, ...], _Form] = {}
        passes = [
            [(name, name, True) for name in names],
            [(name, plural, False) for name in names for plural in plural_forms(name)],
            [(name, s, True) for name in names for s in synonyms[name]],
            [(name, plural, False) for name in names for s in synonyms[name] for plural in plural_forms(s)],
        ]
        for entries in passes:
            for name, form, singular in entries:
                key = _form_key(form)
                if not key:
                    continue
                known = forms.get(key)
                if known is None:
                    forms[key] = _Form(name, singular, not singular)
                elif known.category == name:  # "sheep": both singular and plural
                    forms[key] = _Form(name, known.singular or singular, known.plural or not singular)
        by_category: dict[str, list[str]] = {name: [] for name in names}
        for key, form in forms.items():
            by_category[form.category].append(" ".join(key))
        colour_map = {value: colour_forms(value) for value in sorted(set(colours))}
        vocab = cls({name: tuple(found) for name, found in by_category.items()}, colour_map)
        object.__setattr__(vocab, "_category_forms", forms)
        colour_keys = {_form_key(f): value for value, fs in colour_map.items() for f in fs}
        object.__setattr__(vocab, "_colour_forms", colour_keys)
        object.__setattr__(vocab, "_longest", max((len(k) for k in [*forms, *colour_keys]), default=1))
        return vocab

    @classmethod
    def from_truth(cls, truth: Truth, synonyms: Mapping[str, Iterable[str]] | None = None) -> Vocabulary:
        """The truth's categories with their synonyms plus `synonyms` (a user's file), and every
        colour value the truth's objects carry.

        A `synonyms` key that is no truth category is an error rather than ignored: it is
        almost always a typo, and ignoring it would quietly lower recall.
        """
        categories: dict[str, list[str]] = {}
        for category in truth.categories.values():
            categories.setdefault(category.name, []).extend(category.synonyms)
        for name, extra in (synonyms or {}).items():
            if name not in categories:
                known = ", ".join(sorted(categories)[:12])
                raise VocabularyError(f"synonyms: {name!r} is not a truth category (truth has: {known})")
            categories[name].extend(extra)
        colours = {c for image in truth.images.values() for obj in image.objects if (c := object_colour(obj))}
        return cls.build(categories, colours)

    def occurrences(self, text: str) -> list[Mention]:
        """Every category occurrence outside quotes, in reading order."""
        found: list[Mention] = []
        number: int | None = None
        negated = False
        colour: str | None = None
        for kind, value in self._scan(text):
            if kind == "category":
                form: _Form = value
                stated = number
                if stated == 1 and not form.singular:
                    stated = None
                found.append(Mention(form.category, 0 if negated else stated, negated, colour))
                number, negated, colour = None, False, None
            elif kind == "colour":
                colour = value
            elif kind == "number":
                number, negated, colour = value, negated or value == 0, None
            elif kind == "negation":
                number, negated, colour = None, True, None
            elif kind != "adjective":  # any other word or punctuation ends the noun phrase
                number, negated, colour = None, False, None
        return found

    def mentions(self, text: str) -> dict[str, int]:
        """Category -> how many times the text mentions it (negated occurrences left out)."""
        return mention_counts(self.occurrences(text))

    def stated_counts(self, text: str) -> dict[str, int]:
        """Category -> the count the text states ("two circles" -> 2, "a circle" -> 1, "no circles" -> 0).

        Counts of one category add up ("a red circle and a blue circle" -> 2).
        """
        return stated_counts_of(self.occurrences(text))

    def attribute_pairs(self, text: str) -> set[tuple[str, str]]:
        """(colour, category) pairs the text states: a truth colour right before the category,
        size and shade words allowed between ("a small red square", "a red small square")."""
        return attribute_pairs_of(self.occurrences(text))

    def colour_mentions(self, text: str) -> dict[str, int]:
        """Colour value -> times the text names it outside quotes (paired with a category or not)."""
        return dict(Counter(value for kind, value in self._scan(text) if kind == "colour"))

    def canonical(self, phrase: str | None) -> str | None:
        """The truth category a detector's label or phrase stands for ("squares", "red square",
        "a small red square" -> "square"), or None.

        A whole-phrase form wins; else the last category the phrase mentions, since the head of
        an English noun phrase comes last ("the ball by the dog" is rare from a detector).
        """
        if not phrase:
            return None
        whole = tuple(_tokens(phrase))
        if whole in self._category_forms:
            return self._category_forms[whole].category
        named = [m.category for m in self.occurrences(phrase) if not m.negated]
        return named[-1] if named else None

    def _scan(self, text: str) -> list[tuple[str, object]]:
        """The text as (kind, value) items: category, colour, number, negation, adjective, other."""
        toks = _tokens(text)
        items: list[tuple[str, object]] = []
        i = 0
        while i < len(toks):
            tok = toks[i]
            if tok is None:
                items.append(("other", None))
                i += 1
                continue
            category = self._match(self._category_forms, toks, i)
            colour = self._match(self._colour_forms, toks, i)
            category_len = category[0] if category else 0
            colour_len = colour[0] if colour else (1 if tok in BASIC_COLOURS else 0)
            # The longer form wins ("light blue" over a category "light"); a tie is a colour
            # only when a category follows ("an orange cat" vs "an orange").
            if category and (
                category_len > colour_len
                or (category_len == colour_len and not self._category_follows(toks, i + colour_len))
            ):
                items.append(("category", category[1]))
                i += category_len
            elif colour:
                items.append(("colour", colour[1]))
                i += colour_len
            elif tok in BASIC_COLOURS or tok in SIZE_WORDS or tok in SHADE_WORDS:
                items.append(("adjective", tok))
                i += 1
            elif tok in NUMBER_WORDS or (tok.isascii() and tok.isdigit()):
                items.append(("number", NUMBER_WORDS[tok] if tok in NUMBER_WORDS else int(tok)))
                i += 1
            elif tok in NEGATIONS:
                items.append(("negation", None))
                i += 1
            else:
                items.append(("other", tok))
                i += 1
        return items

    def _match(self, forms: Mapping[tuple[str, ...], object], toks: list[str | None], i: int):
        """(length, value) of the longest form starting at token i, or None."""
        for length in range(min(self._longest, len(toks) - i), 0, -1):
            key = toks[i : i + length]
            if None not in key and (found := forms.get(tuple(key))) is not None:  # type: ignore[arg-type]
                return length, found
        return None

    def _category_follows(self, toks: list[str | None], j: int) -> bool:
        """Whether a category starts at token j, past any size and shade words."""
        while j < len(toks) and (toks[j] in SIZE_WORDS or toks[j] in SHADE_WORDS):
            j += 1
        return j < len(toks) and self._match(self._category_forms, toks, j) is not None


def mention_counts(occurrences: Iterable[Mention]) -> dict[str, int]:
    """`Vocabulary.mentions` of a text already scanned (metrics read one scan several ways)."""
    return dict(Counter(m.category for m in occurrences if not m.negated))


def stated_counts_of(occurrences: Iterable[Mention]) -> dict[str, int]:
    """`Vocabulary.stated_counts` of a text already scanned."""
    counts: dict[str, int] = {}
    for m in occurrences:
        if m.number is not None:
            counts[m.category] = counts.get(m.category, 0) + m.number
    return counts


def attribute_pairs_of(occurrences: Iterable[Mention]) -> set[tuple[str, str]]:
    """`Vocabulary.attribute_pairs` of a text already scanned."""
    return {(m.colour, m.category) for m in occurrences if m.colour and not m.negated}


def _tokens(text: str) -> list[str | None]:
    """Case-folded words with quoted spans and punctuation as None (phrase boundaries).

    Inner hyphens are spaces ("traffic-light" is "traffic light") and a possessive 's is
    dropped ("the dog's ball" mentions a dog).
    """
    flat = _INNER_HYPHEN.sub(" ", text.casefold().replace("’", "'").replace("‘", "'"))
    flat = _QUOTED.sub(" . ", flat)
    out: list[str | None] = []
    for tok in _TOKEN.findall(flat):
        if not (tok[0].isalnum()):
            out.append(None)
        else:
            out.append(tok[:-2] if tok.endswith("'s") and len(tok) > 2 else tok)
    return out


def _form_key(form: str) -> tuple[str, ...]:
    """A form as the tokens a text holding it scans to ("t-shirt" -> ("t", "shirt"))."""
    return tuple(tok for tok in _tokens(form) if tok)


def load_vocabulary_file(uri: str) -> dict[str, list[str]]:
    """A user's synonyms, `{"synonyms": {"cat": ["kitten", "kitty"], ...}}` (any fsspec URI).

    Teams describe the same object in their own words; the file lets them say so without
    editing the truth. Errors are one line naming the file and the key.
    """
    data = read_json(uri, "vocabulary", VocabularyError)
    if not isinstance(data, dict) or not isinstance(data.get("synonyms"), dict):
        raise VocabularyError(f"vocabulary {uri}: expected an object with a 'synonyms' object")
    synonyms: dict[str, list[str]] = {}
    for name, forms in data["synonyms"].items():
        if not (isinstance(forms, list) and all(isinstance(f, str) and f.strip() for f in forms)):
            raise VocabularyError(f"vocabulary {uri}: synonyms.{name} must be a list of non-empty strings")
        synonyms[str(name)] = list(forms)
    return synonyms
