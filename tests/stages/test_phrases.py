"""spaCy noun phrases and categories on fixed captions (the real en_core_web_sm model)."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from finecap.config import PhrasesConfig
from finecap.stages.caption import CAPTION_TYPE
from finecap.stages.phrases import PhraseExtractor, PhrasesStage, load_nlp

SCENE = (
    "A light blue background with three shapes: a large red circle in the top left, a small green star "
    "and a large black hexagon in the bottom right. The word 'garden' is written in black in the centre."
)
STREET = (
    "Two people are sitting on a wooden bench next to the traffic lights while it rains. "
    "They look at a coffee shop sign and an ice-cream truck."
)
CAT = "A close-up photo of a cat's face; its fur is grey and the atmosphere is calm."


@pytest.fixture(scope="module")
def nlp():
    return load_nlp(PhrasesConfig().spacy_model)


def extract(nlp, captions: list[str], **overrides) -> list[tuple[str, str]]:
    extractor = PhraseExtractor(dataclasses.replace(PhrasesConfig(), **overrides), nlp=nlp)
    (phrases,) = extractor.extract([captions])
    return [(p["phrase"], p["category"]) for p in phrases]


def test_scene_caption_gives_its_shapes_and_word(nlp):
    assert extract(nlp, [SCENE]) == [
        ("large red circle", "circle"),
        ("small green star", "star"),
        ("large black hexagon", "hexagon"),
        ("word", "word"),
        ("garden", "garden"),
    ]  # background, shapes, top left, bottom right, black (a colour), centre: generic or abstract


def test_pronouns_are_dropped_and_compounds_make_the_category(nlp):
    assert extract(nlp, [STREET]) == [
        ("people", "people"),
        ("wooden bench", "bench"),
        ("traffic lights", "traffic light"),  # "light" alone is abstract; the compound is a thing
        ("coffee shop sign", "coffee shop sign"),
        ("ice-cream truck", "ice-cream truck"),  # a hyphenated compound stays one word
    ]


def test_possessive_nouns_stay_and_possessive_pronouns_go(nlp):
    assert extract(nlp, [CAT]) == [("cat's face", "face"), ("fur", "fur")]


def test_config_controls_compounds_pronouns_and_word_lists(nlp):
    assert ("coffee shop sign", "shop sign") in extract(nlp, [STREET], max_compounds=1)
    assert ("coffee shop sign", "sign") in extract(nlp, [STREET], max_compounds=0)
    assert ("it", "it") in extract(nlp, [STREET], drop_pronouns=False)
    assert ("light blue background", "background") in extract(nlp, [SCENE], generic_nouns=[])
    assert ("atmosphere", "atmosphere") in extract(nlp, [CAT], abstract_nouns=[])
    assert extract(nlp, [STREET], max_phrases=2) == [("people", "people"), ("wooden bench", "bench")]
    assert ("coffee shop sign", "coffee shop sign") not in extract(nlp, [STREET], max_words=2)


def test_phrases_are_deduplicated_across_an_images_captions(nlp):
    found = extract(nlp, ["A red car next to a tree.", "The red car is parked under a Tree."])
    assert found == [("red car", "car"), ("tree", "tree")]


def test_stage_adds_phrases_per_row(local_config, nlp):
    config = local_config()
    extractor = PhraseExtractor(config.phrases, nlp=nlp)
    caption = {"model": "m", "model_revision": "r", "prompt_id": "global_detailed/v1", "num_tokens": 1}
    captions = [[{**caption, "text": CAT}], [], None]
    batch = pa.table({"key": ["a", "b", "c"], "captions": pa.array(captions, pa.list_(CAPTION_TYPE))})
    out = PhrasesStage(config, extractor=extractor)(batch).to_pylist()
    assert [p["phrase"] for p in out[0]["phrases"]] == ["cat's face", "fur"]
    assert out[1]["phrases"] == [] and out[2]["phrases"] == []
    assert all(r["reject_stage"] is None for r in out)


def test_colour_words_parsed_as_compounds_stay_out_of_the_category(nlp):
    assert extract(nlp, ["A large orange square and a grey stone wall."]) == [
        ("large orange square", "square"),
        ("grey stone wall", "stone wall"),
    ]


def test_symbols_from_generated_text_stay_out_of_phrases(nlp):
    # Tiny random VLMs (and broken real ones) emit stray symbols; they are not part of a thing.
    found = extract(nlp, ["A @@ red car and a \ufffd kite near two ## bowls."])
    assert found == [("red car", "car"), ("kite", "kite"), ("bowls", "bowl")]


def test_phrases_captioners_picks_whose_captions_are_grounded(local_config, nlp):
    config = local_config("phrases.captioners=[tiny-b]")
    extractor = PhraseExtractor(config.phrases, nlp=nlp)
    caption = {"model_revision": "r", "prompt_id": "global_detailed/v1", "num_tokens": 1}
    models = {c.name: c.model for c in config.caption.captioners}
    row = [{**caption, "model": models["tiny-a"], "text": STREET}, {**caption, "model": models["tiny-b"], "text": CAT}]
    batch = pa.table({"key": ["a"], "captions": pa.array([row], pa.list_(CAPTION_TYPE))})
    (out,) = PhrasesStage(config, extractor=extractor)(batch).to_pylist()
    assert [p["phrase"] for p in out["phrases"]] == ["cat's face", "fur"]  # tiny-a's street is not grounded
    semantic = PhrasesStage.semantic(config)
    assert semantic["captioners"] == [models["tiny-b"]] and "captioners" not in PhrasesStage.semantic(local_config())


def test_an_unknown_phrases_captioner_fails_naming_the_key(local_config):
    from finecap.config import ConfigError

    with pytest.raises(ConfigError, match=r"^phrases.captioners.0: no captioner named 'nobody'"):
        local_config("phrases.captioners=[nobody]")
