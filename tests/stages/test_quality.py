"""The quality stage: signals on rows, flags or rejects, cleared for a rerun, in the fingerprints."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from finecap.config import PhrasesConfig, load_config
from finecap.samples.scenes import generate_scene
from finecap.samples.synth_dataset import scene_row
from finecap.schema import conform, load_schema
from finecap.stages import pipeline_stages
from finecap.stages.fingerprints import pipeline_prints
from finecap.stages.phrases import PhraseExtractor, PhrasesStage, load_nlp
from finecap.stages.quality import QualityStage
from tests.conftest import LOCAL_YAML


@pytest.fixture(scope="module")
def nlp():
    return load_nlp(PhrasesConfig().spacy_model)


def config(*overrides: str):
    return load_config(LOCAL_YAML, list(overrides))


def synth_batch(n: int, nlp, caption: str | None = None, region_caption: str | None = None) -> pa.Table:
    """Scenes with their true captions and regions (or the captions given), and the phrases spaCy
    finds in the captions; detector regions named by their caption phrases, as detect names them."""
    rows = []
    for i in range(n):
        scene = generate_scene(np.random.default_rng([7, i]), 320, 240)
        row = scene_row(f"k{i}", scene, "s0", "sha256:x")
        for region, obj in zip(row["regions"][: len(scene.objects)], scene.objects, strict=True):
            region["phrase"] = f"{obj.size} {obj.colour} {obj.shape}"
        for c in row["captions"] if caption else []:
            c["text"] = caption
        for r in row["regions"] if region_caption else []:
            r["caption"] = region_caption
        rows.append(row)
    table = conform(pa.Table.from_pylist(rows), load_schema().arrow)
    cfg = config()
    return PhrasesStage(cfg, PhraseExtractor(cfg.phrases, nlp=nlp))(table)


def test_true_captions_break_no_threshold(nlp):
    out = QualityStage(config())(synth_batch(12, nlp))
    signals = out.column("signals").to_pylist()
    assert all(s["flags"] == [] for s in signals), [s for s in signals if s["flags"]]
    assert all(s["grounding_rate"] >= 0.5 and s["region_agreement"] == 1.0 for s in signals)
    captions = out.column("captions").to_pylist()
    # The long captions repeat "is written in" from word to word: some repetition, under the threshold.
    assert all(c["signals"]["words"] > 3 and c["signals"]["repetition"] < 0.3 for row in captions for c in row)
    agreements = [r["agreement"] for row in out.column("regions").to_pylist() for r in row]
    assert True in agreements and False not in agreements


def test_noise_captions_are_flagged_or_rejected(nlp):
    # Looping noise about a thing no detector box holds, as random weights write.
    batch = synth_batch(2, nlp, caption="the elephant elephant elephant elephant elephant elephant",
                        region_caption="an elephant")
    flagged = QualityStage(config())(batch)
    assert all({"low_grounding", "repetitive", "region_disagreement"} <= set(s["flags"])
               for s in flagged.column("signals").to_pylist())
    assert flagged.column("reject_stage").null_count == 2  # flag: kept
    rejected = QualityStage(config("quality.action=reject"))(batch)
    assert rejected.column("reject_stage").to_pylist() == ["quality", "quality"]
    assert set(rejected.column("reject_reason").to_pylist()) == {"low_grounding"}  # the first broken rule
    assert all("quality.max_repetition=0.3" in d for d in rejected.column("reject_detail").to_pylist())


def test_clear_removes_every_signal(nlp):
    out = QualityStage.clear(QualityStage(config())(synth_batch(2, nlp)))
    assert out.column("signals").null_count == 2
    assert all(c["signals"] is None for row in out.column("captions").to_pylist() for c in row)
    assert all(r["agreement"] is None for row in out.column("regions").to_pylist() for r in row)


def test_last_stage_reading_every_stage_and_in_the_fingerprints():
    cfg = config()
    assert pipeline_stages(cfg)[-1][0] is QualityStage
    assert QualityStage.inputs(cfg) == ("caption", "phrases", "detect", "ocr", "regions")
    assert QualityStage not in [s for s, _ in pipeline_stages(config("quality.enabled=false"))]
    before = pipeline_prints(cfg)["quality"].fingerprint
    assert pipeline_prints(config("quality.min_grounding_rate=0.5"))["quality"].fingerprint != before
    assert pipeline_prints(config("quality.resources.batch_size=8"))["quality"].fingerprint == before
    # Its inputs' fingerprints are in its own: a new caption prompt measures again.
    assert pipeline_prints(config("caption.captioners.0.max_tokens=9"))["quality"].fingerprint != before
