"""Real PP-OCRv4 (rapidocr) reads the rendered words: the bar later OCR work is held to.

At least 90% of words must be read exactly (case included, after NFKC) by a detection whose
box overlaps the ground-truth box at IoU >= 0.5.
"""

from __future__ import annotations

import pytest

from finecap.samples.matching import match_words
from tests.samples.conftest import make_scene

N_SCENES = 10


@pytest.fixture(scope="module")
def ocr():
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    return rapidocr.RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)


def test_pp_ocr_reads_rendered_words_exactly_at_the_right_place(ocr):
    matches, rotated = [], 0
    for index in range(N_SCENES):
        scene = make_scene(2, index)
        result, _ = ocr(scene.image)
        detections = [(quad, text) for quad, text, _score in result or []]
        matches += match_words([(w.text, w.bbox_px) for w in scene.words], detections)
        rotated += sum(w.rotation != 0 for w in scene.words)
    assert len(matches) >= 15 and rotated >= 3, "the sample is too small to mean anything"
    read = [m for m in matches if m.ok]
    misses = [(m.text, m.read, round(m.iou, 2)) for m in matches if not m.ok]
    assert len(read) >= 0.9 * len(matches), f"{len(read)}/{len(matches)} read; misses: {misses}"
