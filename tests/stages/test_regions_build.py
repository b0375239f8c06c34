"""A real build whose region captioner fails in every way it can: each failed generation keeps
its region (box, no caption) and is counted per reason in the shard manifests, the report and
the card. The captioners are loopback OpenAI-compatible endpoints (the region one answers from a
script); spaCy, the tiny Grounding DINO and PP-OCRv4 run for real, under Ray."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from finecap.config import load_config
from finecap.report.card import card_body
from finecap.report.stats import collect_stats
from finecap.runtime.runner import run_build
from tests.conftest import LOCAL_YAML
from tests.stages.openai_loopback import LoopbackChat
from tests.stages.test_stage_batches import rectangles

pytestmark = pytest.mark.slow

# (status, caption) answers, in turn, and the failure each one is counted as (None: a caption).
SCRIPT = [((200, "A red square on a pale background."), None), ((500, ""), "engine_error"),
          ((200, ""), "empty_generation"), ((200, "\x1b" * 24), "empty_after_hygiene"),
          ((200, "I'm sorry, I can't see the outlined region."), "refusal")]


@pytest.fixture
def endpoints():
    chats = LoopbackChat(), LoopbackChat()
    yield chats
    for chat in chats:
        chat.close()


def test_failed_region_captions_are_counted_per_reason_in_manifests_and_report(endpoints, tmp_path):
    captions, regions = endpoints
    regions.script = [answer for answer, _ in SCRIPT]
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        (folder / f"img{i}.jpg").write_bytes(rectangles(seed=i))
    config = load_config(LOCAL_YAML, [f"caption.captioners=[{captions.captioner('tiny-a')}]",
                                      f"regions.captioner={regions.captioner('tiny-regions', 'region_context/v1')}",
                                      "source.shard_size=2", "run.num_cpus=2"],
                         **{"source.uri": str(folder), "output.uri": str(tmp_path / "out")})
    summary = run_build(config)
    assert summary.shards_committed == 2 and summary.rows_written == 4
    expected = Counter()
    for entry, (_, reason) in enumerate(SCRIPT):
        if reason:
            expected[reason] += regions.served[entry]
    assert all(expected[reason] for _, reason in SCRIPT if reason), regions.served  # every reason met
    out = tmp_path / "out"
    manifests = [json.loads(p.read_text()) for p in sorted((out / "_manifest").glob("*.json"))]
    counted = sum((Counter(m["region_caption_failures"]) for m in manifests), Counter())
    assert counted == expected
    rows = pq.read_table(out / "data", columns=["regions"]).column("regions").to_pylist()
    found = [r for row in rows for r in row]
    uncaptioned = [r for r in found if r["caption"] is None]
    detector = [r for r in found if r["origin"] == "detector"]  # OCR regions take their text: no request
    assert len(uncaptioned) == sum(expected.values()) and len(detector) == sum(regions.served.values())
    assert all(r["caption_model"] is None and len(r["bbox"]) == 4 for r in uncaptioned)  # kept, box and all
    stats = collect_stats(str(out))
    assert stats["region_caption_failures"] == dict(sorted(expected.items()))
    card = card_body(stats, str(out), "test")
    assert f"| empty_after_hygiene | {expected['empty_after_hygiene']} |" in card
    # A rebuild that keeps the region captions (a quality threshold: quality and the phrases it
    # reads run again) carries the counts over from the committed manifests.
    served = dict(regions.served)
    rebuilt = run_build(load_config(LOCAL_YAML, [f"caption.captioners=[{captions.captioner('tiny-a')}]",
                                                 f"regions.captioner={regions.captioner('tiny-regions', 'region_context/v1')}",
                                                 "source.shard_size=2", "run.num_cpus=2", "quality.max_repetition=0.5"],
                                    **{"source.uri": str(folder), "output.uri": str(out)}))
    assert rebuilt.shards_committed == 2 and regions.served == served  # no region caption asked for again
    manifests = [json.loads(p.read_text()) for p in sorted((out / "_manifest").glob("*.json"))]
    assert {m["version"] for m in manifests} == {"000002"}
    assert sum((Counter(m["region_caption_failures"]) for m in manifests), Counter()) == expected
