"""The Grounding DINO engine on the tiny random-weight model: real tokenizer, real forward pass."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from finecap.engines.detector import GroundingDinoEngine, forwards
from finecap.models.registry import resolve_model
from finecap.models.revision import model_revision

PHRASES = ["large red circle", "small green star", "word", "black hexagon", "coffee shop sign", "dog"]


@pytest.fixture(scope="module")
def engine():
    return GroundingDinoEngine("tiny:gdino", batch_size=4, max_text_tokens=24)


def _image(shade: int) -> Image.Image:
    image = Image.new("RGB", (320, 240), (200, 200 - shade, 180))
    ImageDraw.Draw(image).ellipse([40, 40, 140, 140], fill=(220, 40, 40))
    return image


def test_engine_names_its_model_and_revision(engine):
    assert engine.model == "tiny:gdino"
    assert engine.revision == model_revision(resolve_model("tiny:gdino")) and engine.revision.startswith("sha256:")
    assert engine.token_limit == 24  # the configured limit, under the model's own 256


def test_prompts_fit_the_text_encoder_with_the_real_tokenizer(engine):
    chunks = engine.prompts(PHRASES)
    assert len(chunks) > 1
    assert [i for c in chunks for i in c.phrases] == list(range(len(PHRASES)))
    for chunk in chunks:
        assert len(engine.tokenizer(chunk.text).input_ids) <= engine.token_limit
        for i, (start, end) in zip(chunk.phrases, chunk.spans, strict=True):
            assert chunk.text[start:end] == PHRASES[i]


def test_detect_returns_normalised_candidates_labelled_with_any_prompts_phrases(engine):
    images = [_image(0), _image(60), _image(120)]
    phrases = [PHRASES, [], PHRASES[:2]]
    found = engine.detect(images, phrases, box_threshold=0.3, text_threshold=0.3)
    assert len(found) == 3 and found[1] == []
    assert found[0] and found[2]
    for candidates, names in ((found[0], PHRASES), (found[2], PHRASES[:2])):
        for c in candidates:
            x1, y1, x2, y2 = c.box
            assert 0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0
            assert 0 <= c.phrase < len(names) and c.score >= 0.3
    # Phrases of the second prompt are grounded too, not only the first prompt's.
    second = set(engine.prompts(PHRASES)[1].phrases)
    assert {c.phrase for c in found[0]} & second
    # Same inputs, same boxes (inference mode, no sampling).
    again = engine.detect(images[:1], phrases[:1], box_threshold=0.3, text_threshold=0.3)
    assert again[0] == found[0]


def _scene(size: tuple[int, int], shade: int) -> Image.Image:
    image = Image.new("RGB", size, (200, 200 - shade, 180))
    ImageDraw.Draw(image).ellipse([30, 30, 30 + size[0] // 3, 30 + size[1] // 3], fill=(220, 40, 40))
    return image


def test_forwards_hold_pairs_of_one_image_size_up_to_the_batch_size():
    sizes = [(320, 240), (300, 400), (320, 240), (320, 240), (300, 400), (320, 240)]
    assert forwards(sizes, 3) == [[0, 2, 3], [5], [1, 4]]
    assert forwards(sizes, 1) == [[n] for n in (0, 2, 3, 5, 1, 4)]
    assert forwards([], 4) == []


def test_batched_forwards_give_what_one_pair_per_forward_gives(monkeypatch):
    sizes = [(320, 240), (300, 400), (320, 240), (512, 256), (300, 400), (320, 240)]
    images = [_scene(size, 25 * n) for n, size in enumerate(sizes)]
    phrases = [PHRASES, PHRASES[:2], PHRASES[2:], [], PHRASES[1:4], PHRASES[::-1]]
    single = GroundingDinoEngine("tiny:gdino", device="cpu", batch_size=1, max_text_tokens=24)
    batched = GroundingDinoEngine("tiny:gdino", device="cpu", batch_size=8, max_text_tokens=24)
    rows = []
    forward = batched._forward
    monkeypatch.setattr(batched, "_forward",
                        lambda pixels, r, texts: rows.append(len(texts)) or forward(pixels, r, texts))
    want = single.detect(images, phrases, box_threshold=0.3, text_threshold=0.3)
    got = batched.detect(images, phrases, box_threshold=0.3, text_threshold=0.3)
    pairs = sum(len(single.prompts(p)) for p in phrases)
    assert sum(rows) == pairs and len(rows) == 2  # the 320x240 images' prompts, then the 300x400 ones'
    assert sum(len(c) for c in want) > 50
    for a, b in zip(want, got, strict=True):
        assert [c.phrase for c in a] == [c.phrase for c in b]
        assert [c.box for c in b] == [pytest.approx(c.box, abs=1e-4) for c in a]
        assert [c.score for c in b] == pytest.approx([c.score for c in a], abs=1e-4)
