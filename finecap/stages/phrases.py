"""phrases: noun phrases from the global captions, the detector's prompts.

spaCy's noun chunks, cleaned: leading determiners, numbers, possessive pronouns, quotes and
stray symbols are cut ("two red cars" -> "red cars"); chunks headed by a pronoun
(`drop_pronouns`), chunks whose category (below) is a generic noun ("image", "background",
"left") or an abstract one ("atmosphere", "blue"), and chunks longer than `max_words` are
dropped. Each phrase gets a `category`: the head noun's lemma, lower-cased, after up to
`max_compounds` compound nouns right before it ("the traffic lights" -> "traffic light",
"a large red coffee cup" -> "coffee cup"). Categories are what the balance pass counts.
Phrases are lower-cased and deduplicated per image, first mention first.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib import metadata

import pyarrow as pa

from finecap.config import PhrasesConfig, PipelineConfig, Resources
from finecap.stages.base import Stage, set_column

PHRASE_TYPE = pa.struct([pa.field("phrase", pa.string()), pa.field("category", pa.string())])
# Tokens cut from the front of a chunk: articles, quantities, possessives, stray punctuation.
_LEADING_POS = {"DET", "NUM", "PUNCT", "PRON", "PART", "SYM"}
_EDGE_PUNCT = " '\"`‘’“”.,;:!?()[]{}"


def spacy_model_version(model: str) -> str:
    """The installed version of a spaCy model package (and of spaCy), without loading either."""
    versions = []
    for package in ("spacy", model.replace("_", "-")):
        try:
            versions.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package}==unknown")
    return ";".join(versions)


def load_nlp(model: str):
    """The spaCy pipeline without NER (noun chunks need only the tagger and parser; ~25% faster)."""
    import spacy

    return spacy.load(model, exclude=["ner"])


class PhraseExtractor:
    """Noun phrases and categories from text with one loaded spaCy pipeline."""

    def __init__(self, config: PhrasesConfig, nlp=None):
        self.config = config
        self.nlp = nlp if nlp is not None else load_nlp(config.spacy_model)
        self.abstract = {w.lower() for w in config.abstract_nouns}
        self.dropped_heads = self.abstract | {w.lower() for w in config.generic_nouns}

    def extract(self, texts: list[list[str]]) -> list[list[dict]]:
        """Per image (a list of its captions), its phrases as {phrase, category}."""
        flat = [t for captions in texts for t in captions]
        docs = iter(self.nlp.pipe(flat, batch_size=64))
        out = []
        for captions in texts:
            seen: dict[str, dict] = {}
            for _ in captions:
                for chunk in next(docs).noun_chunks:
                    found = self.phrase(chunk)
                    if found and found["phrase"] not in seen:
                        seen[found["phrase"]] = found
            out.append(list(seen.values())[: self.config.max_phrases])
        return out

    def phrase(self, chunk) -> dict | None:
        """{phrase, category} of one spaCy noun chunk, or None when it is dropped."""
        head = chunk.root
        allowed = ("NOUN", "PROPN") if self.config.drop_pronouns else ("NOUN", "PROPN", "PRON")
        if head.pos_ not in allowed:
            return None
        category = self.category(head)
        if category in self.dropped_heads:  # "light" goes, "traffic light" stays
            return None
        start = chunk.start
        while start < head.i and _is_leading(chunk.doc[start]):
            start += 1
        span = chunk.doc[start : chunk.end]
        if sum(not t.is_punct for t in span) > self.config.max_words:
            return None
        phrase = " ".join(span.text.lower().split()).strip(_EDGE_PUNCT)
        return {"phrase": phrase, "category": category} if phrase else None

    def category(self, head) -> str:
        """Head lemma after the compound nouns directly before it, hyphenated words whole
        ("ice-cream truck"), at most `max_compounds` of them ("delivery van stop"); leading
        abstract words are not compounds, whatever the parser says ("orange square" -> "square")."""
        doc, first = head.doc, head.i
        while first > 0:
            before = doc[first - 1]
            attached = first - 1 < before.head.i <= head.i
            hyphen = before.text == "-" and not before.whitespace_ and first > 1 and not doc[first - 2].whitespace_
            if not (attached and (before.dep_ == "compound" or hyphen)):
                break
            first -= 1
        words = [w for w in "".join(t.text_with_ws for t in doc[first : head.i]).lower().split()
                 if any(ch.isalnum() for ch in w)]
        keep = words[len(words) - self.config.max_compounds :] if self.config.max_compounds else []
        while keep and keep[0].strip("-") in self.abstract:  # a colour parsed as a compound
            keep = keep[1:]
        glue = "" if keep and not doc[head.i - 1].whitespace_ else " "
        return (" ".join(keep) + glue + head.lemma_.lower()).strip()


def _is_leading(token) -> bool:
    """Possessive nouns stay ("a cat's face" -> "cat's face"); possessive pronouns and tokens
    without a letter or digit (stray symbols in generated text) go."""
    junk = not any(ch.isalnum() for ch in token.text)
    return junk or token.pos_ in _LEADING_POS or token.dep_ in ("det", "nummod", "predet")


class PhrasesStage(Stage):
    """Adds the working column `phrases` (list of {phrase, category}); rows are never rejected."""

    name = "phrases"
    transient = True  # only detect reads the phrases; the dataset keeps them on the regions
    # An actor, so spaCy loads once per worker (~1 s) instead of once per batch.
    holds_model = True

    def __init__(self, config: PipelineConfig, extractor: PhraseExtractor | None = None):
        super().__init__(config)
        self.extractor = extractor or PhraseExtractor(config.phrases)

    @classmethod
    def enabled(cls, config: PipelineConfig) -> bool:
        return config.phrases.enabled

    @classmethod
    def resources(cls, config: PipelineConfig) -> Resources:
        return config.phrases.resources

    @classmethod
    def inputs(cls, config: PipelineConfig) -> tuple[str, ...]:
        return ("caption",)

    @classmethod
    def semantic(cls, config: PipelineConfig) -> dict:
        cfg = asdict(config.phrases)
        cfg.pop("enabled")
        cfg.pop("resources")
        if not cfg["captioners"]:
            cfg.pop("captioners")  # every caption, as before the key existed: the fingerprint stays
        else:
            cfg["captioners"] = sorted(cls._models(config))
        return {**cfg, "spacy_version": spacy_model_version(config.phrases.spacy_model)}

    @classmethod
    def provenance(cls, config: PipelineConfig) -> list[dict]:
        model = config.phrases.spacy_model
        return [{"stage": cls.name, "name": "spacy", "model": model, "revision": spacy_model_version(model)}]

    @staticmethod
    def _models(config: PipelineConfig) -> set[str]:
        """The models of `phrases.captioners` (captions name their model, not their captioner)."""
        return {c.model for c in config.caption.captioners if c.name in config.phrases.captioners}

    def process(self, batch: pa.Table) -> pa.Table:
        captions = batch.column("captions").to_pylist() if "captions" in batch.column_names else []
        models = self._models(self.config) if self.config.phrases.captioners else None
        texts = [[c["text"] for c in (row or []) if c.get("text") and (models is None or c["model"] in models)]
                 for row in captions] or [[]] * batch.num_rows
        phrases = self.extractor.extract(texts)
        return set_column(batch, "phrases", pa.array(phrases, pa.list_(PHRASE_TYPE)))
