"""Every registered stage on the batches a real run meets at its edges, with real components.

The stages come from the registry (`pipeline_stages` of pipelines/local.yaml), so a new stage is
covered the day it is registered: spaCy, the tiny Grounding DINO and PP-OCRv4 for real, and the
captioners on a loopback OpenAI-compatible endpoint (`openai_loopback.py`) that counts requests.
The batches: empty; every row rejected before the stage (so the columns of the stages it skipped
are missing entirely); a row that lost its image bytes; and, through the whole chain, images whose
captions give no noun phrase, so no row has phrases, regions or OCR text (issue 13: that batch
made the detect stage raise `ArrowNotImplementedError: array_take (binary, null)`).
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from PIL import Image, ImageDraw

from finecap.config import load_config
from finecap.engines.detector import GroundingDinoEngine
from finecap.sources import make_source
from finecap.stages import pipeline_stages
from finecap.stages.detect import DetectStage
from finecap.stages.ocr import OcrStage, make_ocr_engine
from finecap.stages.phrases import PhraseExtractor, PhrasesStage, load_nlp
from tests.conftest import LOCAL_YAML
from tests.stages.openai_loopback import LoopbackChat

# Stages that decode an image column for their active rows.
READS_IMAGES = {"prepare", "caption", "detect", "ocr", "regions"}
PHRASELESS = "It is what it is."


def stage_id(cls, kwargs: dict) -> str:
    return f"{cls.name}[{kwargs['captioner']}]" if "captioner" in kwargs else cls.name


STAGE_IDS = [stage_id(cls, kwargs) for cls, kwargs in pipeline_stages(load_config(LOCAL_YAML))]


def rectangles(size=(640, 512), seed: int = 0) -> bytes:
    """A plain JPEG of coloured rectangles, as in the issue's folder."""
    image = Image.new("RGB", size, (90 + 20 * seed % 120, 140, 170))
    draw = ImageDraw.Draw(image)
    draw.rectangle([60, 50, 300, 260], fill=(200, 40, 40))
    draw.rectangle([340, 220, 600, 470], fill=(40, 60, 190))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def chat():
    server = LoopbackChat()
    yield server
    server.close()


@pytest.fixture(scope="module")
def config(chat, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rectangles")
    for i in range(3):
        (folder / f"img{i}.jpg").write_bytes(rectangles(seed=i))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    captioners = f"[{chat.captioner('tiny-a')}, {chat.captioner('tiny-b')}]"
    return load_config(LOCAL_YAML, [f"caption.captioners={captioners}",
                                    f"regions.captioner={chat.captioner('tiny-regions', 'region_context/v1')}"],
                       **{"source.uri": str(folder), "output.uri": str(tmp_path_factory.mktemp("out"))})


@pytest.fixture(scope="module")
def stages(config) -> dict:
    """Every registered stage, built once; model stages share one engine each."""
    nlp = load_nlp(config.phrases.spacy_model)
    shared = {
        DetectStage: {"engine": GroundingDinoEngine(config.detect.model)},
        OcrStage: {"engine": make_ocr_engine(config.ocr)},
        PhrasesStage: {"extractor": PhraseExtractor(config.phrases, nlp=nlp)},
    }
    built = {stage_id(cls, kwargs): cls(config, **kwargs, **shared.get(cls, {}))
             for cls, kwargs in pipeline_stages(config)}
    assert list(built) == STAGE_IDS
    return built


@pytest.fixture(scope="module")
def source_batch(config) -> pa.Table:
    source = make_source(config)
    (spec,) = source.plan()
    return source.read(spec)


def run_chain(stages: dict, batch: pa.Table) -> tuple[dict[str, pa.Table], pa.Table]:
    """The batch each stage received, and the final batch."""
    seen = {}
    for sid, stage in stages.items():
        seen[sid] = batch
        batch = stage(batch)
    return seen, batch


@pytest.fixture(scope="module")
def inputs(stages, source_batch, chat) -> dict[str, pa.Table]:
    """What each stage received in a run over three rectangle images and one broken file."""
    seen, out = run_chain(stages, source_batch)
    kept = out.filter(pc.is_null(out.column("reject_stage")))
    assert kept.num_rows == 3 and all(r for r in kept.column("phrases").to_pylist())
    return seen


@pytest.mark.parametrize("sid", STAGE_IDS)
def test_every_stage_takes_an_empty_batch(stages, inputs, chat, sid):
    before = chat.requests
    empty = inputs[sid].slice(0, 0)
    out = stages[sid](empty)
    assert out.num_rows == 0 and set(empty.column_names) <= set(out.column_names)
    assert chat.requests == before


@pytest.mark.parametrize("sid", STAGE_IDS)
def test_rows_rejected_before_a_stage_pass_it_unchanged(stages, source_batch, chat, sid):
    """Every row rejected at read: none of the columns of the stages in between exist."""
    n = source_batch.num_rows
    batch = source_batch
    for name, value in (("reject_stage", "read"), ("reject_reason", "unreadable"), ("reject_detail", "gone")):
        batch = batch.set_column(batch.column_names.index(name), name, pa.array([value] * n, pa.string()))
    before = chat.requests
    out = stages[sid](batch)
    assert out.num_rows == n and chat.requests == before
    assert out.column("key").to_pylist() == batch.column("key").to_pylist()
    assert set(out.column("reject_stage").to_pylist()) == {"read"}


@pytest.mark.parametrize("sid", STAGE_IDS)
def test_a_row_that_lost_its_image_bytes_is_rejected_not_raised(stages, inputs, sid):
    """Active rows whose image columns are null: a stage that needs them rejects the row (`empty`)."""
    batch = inputs[sid]
    batch = batch.filter(pc.is_null(batch.column("reject_stage")))
    for name in ("image_bytes", "model_image"):
        if name in batch.column_names:
            index = batch.column_names.index(name)
            batch = batch.set_column(index, name, pa.nulls(batch.num_rows, batch.schema.field(name).type))
    out = stages[sid](batch).to_pylist()
    assert len(out) == batch.num_rows
    name = stages[sid].name
    marks = [(r["reject_stage"], r["reject_reason"]) for r in out]
    if name in READS_IMAGES:  # a captioner decodes only the rows it captions
        assert (name, "empty") in marks and set(marks) <= {(name, "empty"), (None, None)}
    else:
        assert all(r["reject_stage"] is None for r in out)


def test_a_batch_without_phrases_regions_or_text_goes_through_every_stage(stages, source_batch, chat):
    """The issue's folder: plain rectangles whose captions hold no noun phrase."""
    saved, chat.caption = chat.caption, PHRASELESS
    try:
        before = chat.requests
        seen, out = run_chain(stages, source_batch)
    finally:
        chat.caption = saved
    rows = [r for r in out.to_pylist() if r["reject_stage"] is None]
    assert len(rows) == 3 and out.num_rows == 4
    assert all(r["phrases"] == [] and r["regions"] == [] and r["captions"][0]["text"] == PHRASELESS for r in rows)
    # One caption request per image (weighted: one captioner each); detect and regions made no call.
    assert chat.requests - before == 3
    assert not any(seen[sid].num_rows == 0 for sid in STAGE_IDS)


@pytest.fixture
def failing_chat(chat):
    """The endpoint answers HTTP 500 to every request for the length of one test."""
    chat.status = 500
    yield chat
    chat.status = 200


def test_an_endpoint_that_answers_500_makes_engine_error_rejects(stages, inputs, failing_chat):
    """Every captioner fails (the second retries the first's failures): each image becomes one
    `caption/engine_error` reject whose detail names the tries and the server's answer."""
    batch = inputs["caption[tiny-a]"]
    for sid in ("caption[tiny-a]", "caption[tiny-b]"):
        batch = stages[sid](batch)
    rows = {r["key"]: r for r in batch.to_pylist()}
    failed = [r for r in rows.values() if r["reject_stage"] != "prepare"]
    assert len(failed) == 3 and all(r["reject_stage"] == "caption" and r["reject_reason"] == "engine_error"
                                    for r in failed)
    for r in failed:  # the last try is tiny-b's: for rows tiny-a took, a retry of its failure
        assert r["reject_detail"].split("; ")[-1].startswith("tiny-b: engine_error: ")
        assert "HTTP 500" in r["reject_detail"]


def test_an_endpoint_that_answers_500_leaves_regions_uncaptioned(stages, inputs, failing_chat):
    """Region captions are extras: a failed request leaves the region (box, phrase) without a
    caption and the row goes on."""
    batch = inputs["regions"]
    before = failing_chat.requests
    out = [r for r in stages["regions"](batch).to_pylist() if r["reject_stage"] != "prepare"]
    assert len(out) == 3 and all(r["reject_stage"] is None for r in out)
    detector = [g for r in out for g in r["regions"] if g["origin"] == "detector"]
    assert detector and all(g["caption"] is None and g["caption_model"] is None for g in detector)
    assert failing_chat.requests - before == len(detector)
