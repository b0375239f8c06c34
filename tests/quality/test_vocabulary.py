import json

import pytest

from finecap.quality.truth import parse_truth
from finecap.quality.vocabulary import (
    Vocabulary,
    VocabularyError,
    load_vocabulary_file,
    plural_forms,
    word_tokens,
)


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary.build(
        {"circle": ["disc", "disk"], "square": [], "traffic light": [], "light": [], "cat": ["kitten"],
         "orange": [], "person": [], "t-shirt": [], "ring": []},
        ["red", "blue", "light blue", "grey"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("box", {"boxes"}), ("bus", {"buses"}), ("city", {"cities"}), ("toy", {"toys"}),
        ("person", {"people", "persons"}), ("traffic light", {"traffic lights"}),
        ("potato", {"potatos", "potatoes"}), ("fireman", {"firemen", "firemans"}),
        ("knife", {"knives", "knifes"}), ("bench", {"benches"}), ("Sheep", {"sheep", "sheeps"}),
    ],
)  # fmt: skip
def test_plural_forms(name, expected):
    assert set(plural_forms(name)) == expected


def test_forms_are_lower_case_names_synonyms_and_plurals(vocab):
    assert set(vocab.categories["circle"]) == {"circle", "circles", "disc", "discs", "disk", "disks"}
    assert set(vocab.categories["t-shirt"]) == {"t shirt", "t shirts"}
    assert set(vocab.colours["grey"]) == {"grey", "gray"}


def test_a_categorys_own_name_beats_another_categorys_synonym():
    vocab = Vocabulary.build({"computer": ["mouse"], "mouse": []})
    assert vocab.mentions("a mouse on the desk") == {"mouse": 1}
    assert "mouse" not in vocab.categories["computer"]


def test_mentions_whole_words_longest_form_first(vocab):
    assert vocab.mentions("a traffic light and a light") == {"traffic light": 1, "light": 1}
    assert vocab.mentions("Traffic-lights at dusk") == {"traffic light": 1}
    assert vocab.mentions("spring, discs and a Circle") == {"circle": 2}  # "spring" holds no ring


def test_mentions_skip_quoted_text_negations_and_colour_adjectives(vocab):
    assert vocab.mentions("The word 'circle' is written in black.") == {}
    assert vocab.mentions('a sign saying "square" and a “cat”') == {}
    assert vocab.mentions("the cat's toy") == {"cat": 1}  # an apostrophe is no quote
    assert vocab.mentions("a table with no cats, without a square") == {}
    assert vocab.mentions("an orange cat beside an orange.") == {"cat": 1, "orange": 1}


def test_stated_counts(vocab):
    assert vocab.stated_counts("two circles") == {"circle": 2}
    assert vocab.stated_counts("a circle") == {"circle": 1}
    assert vocab.stated_counts("twelve small red squares and 3 cats") == {"square": 12, "cat": 3}
    assert vocab.stated_counts("no people here") == {"person": 0}
    # counts of a category add up: the scenes enumerate "a red circle and a blue circle"
    assert vocab.stated_counts("a red circle and a large blue circle") == {"circle": 2}
    assert vocab.stated_counts("a circles, the square, many cats") == {}  # no count agrees or is stated
    assert vocab.stated_counts("two shapes: a kitten") == {"cat": 1}


def test_attribute_pairs(vocab):
    assert vocab.attribute_pairs("a small red square") == {("red", "square")}
    assert vocab.attribute_pairs("a red small square") == {("red", "square")}
    assert vocab.attribute_pairs("a light blue square, a blue disc") == {("light blue", "square"),
                                                                        ("blue", "circle")}
    assert vocab.attribute_pairs("a gray cat") == {("grey", "cat")}
    assert vocab.attribute_pairs("red, square") == set()  # punctuation ends the phrase
    assert vocab.attribute_pairs("red and blue squares") == {("blue", "square")}
    assert vocab.attribute_pairs("no red squares") == set()
    assert vocab.attribute_pairs("written in 'red square' letters") == set()


def test_colour_mentions(vocab):
    assert vocab.colour_mentions("a red square on a light blue background, red again") == {"red": 2,
                                                                                           "light blue": 1}
    assert vocab.colour_mentions("the word 'blue'") == {}


def test_canonical(vocab):
    assert vocab.canonical("squares") == "square"
    assert vocab.canonical("red square") == "square"
    assert vocab.canonical("a small red square") == "square"
    assert vocab.canonical("Traffic-Light") == "traffic light"
    assert vocab.canonical("a kitten near the disc") == "circle"  # the last one named: a noun chunk's head
    assert vocab.canonical("dog") is None
    assert vocab.canonical("") is None
    assert vocab.canonical(None) is None


def _truth() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "circle", "synonyms": ["disc"]}, {"id": 2, "name": "cat"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "attributes": {"colour": "red"}},
            {"image_id": 1, "category_id": 2, "bbox": [3, 3, 2, 2], "attributes": {"color": "Light Blue"}},
            {"image_id": 1, "category_id": 2, "bbox": [6, 6, 2, 2]},
        ],
    }


def test_from_truth_takes_categories_synonyms_extra_and_colours():
    vocab = Vocabulary.from_truth(parse_truth(_truth()), {"cat": ["kitty"]})
    assert set(vocab.categories) == {"circle", "cat"}
    assert set(vocab.categories["circle"]) == {"circle", "circles", "disc", "discs"}
    assert set(vocab.categories["cat"]) == {"cat", "cats", "kitty", "kitties"}
    assert set(vocab.colours) == {"red", "Light Blue"}
    assert vocab.attribute_pairs("two light blue kitties") == {("Light Blue", "cat")}


def test_from_truth_names_an_unknown_synonyms_key():
    with pytest.raises(VocabularyError, match="'kiten' is not a truth category"):
        Vocabulary.from_truth(parse_truth(_truth()), {"kiten": ["kitty"]})


def test_load_vocabulary_file(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"synonyms": {"cat": ["kitten", "kitty"]}}))
    assert load_vocabulary_file(str(path)) == {"cat": ["kitten", "kitty"]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        (json.dumps({"cat": ["kitten"]}), "expected an object with a 'synonyms' object"),
        (json.dumps({"synonyms": {"cat": "kitten"}}), "synonyms.cat must be a list of non-empty strings"),
        (json.dumps({"synonyms": {"cat": ["kitten", ""]}}), "synonyms.cat must be a list"),
    ],
)
def test_load_vocabulary_file_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / "vocab.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(VocabularyError, match=message) as caught:
        load_vocabulary_file(str(path))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_word_tokens_keep_quotes_and_apostrophes():
    assert word_tokens("The word 'SPRING' isn't here.") == ["the", "word", "spring", "isn't", "here"]
