"""The regions stage over a balanced selection: only selected regions reach the VLM (the real
tiny VLM in vLLM, its requests counted), the rest keep their boxes and get no caption."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from finecap.balance import balance
from finecap.balance_selection import Selection
from finecap.config import load_config
from finecap.stages.detect import regions_type
from finecap.stages.regions import RegionsStage
from tests.conftest import LOCAL_YAML, png_bytes
from tests.test_balance import write_output


class CountingEngine:
    """The real engine, with the number of requests it was given counted."""

    def __init__(self, engine):
        self.engine, self.requests = engine, 0
        self.model, self.revision = engine.model, engine.revision

    def generate(self, images, prompts, sampling):
        self.requests += len(prompts)
        return self.engine.generate(images, prompts, sampling)


def _batch(out, shard: str) -> pa.Table:
    rows = pq.read_table(out / "data" / f"{shard}.parquet", columns=["key", "regions"]).to_pylist()
    rows = [r for r in rows if r["regions"]][:6]
    return pa.table({
        "key": [r["key"] for r in rows], "shard": [shard] * len(rows),
        "image_bytes": [png_bytes((96, 64))] * len(rows),
        "regions": pa.array([r["regions"] for r in rows], regions_type()),
    })


def test_only_the_selected_regions_are_captioned_and_ocr_regions_are_exempt(tmp_path, vllm_engine):
    out = tmp_path / "out"
    write_output(out)
    summary = balance(str(out), cap=20)
    selection = Selection(str(out / "balance"))
    config = load_config(LOCAL_YAML, ["regions.captioner.max_tokens=4", "regions.caption_ocr_regions=false",
                                      f"balance.selection={out / 'balance'}"])
    engine = CountingEngine(vllm_engine)
    batch = _batch(out, "part-000000")
    rows = RegionsStage(config, engine=engine)(batch).to_pylist()
    selected = unselected = 0
    for row in rows:
        kept = selection.kept("part-000000", row["key"])
        for index, region in enumerate(row["regions"]):
            if region["origin"] == "ocr":  # exempt: captioned with its own text, no VLM request
                assert region["caption_model"].startswith("PP-OCRv4@")
            elif index in kept:
                selected += 1
            else:
                unselected += 1
                assert region["caption"] is None and region["bbox"] is not None
    assert selected and unselected and engine.requests == selected
    assert summary.capped_categories == 3


def test_the_selection_is_part_of_the_regions_fingerprint(tmp_path):
    from finecap.stages.fingerprints import pipeline_prints

    out = tmp_path / "out"
    write_output(out)
    balance(str(out), cap=20, out=str(out / "a"))
    balance(str(out), cap=30, out=str(out / "b"))
    prints = {name: pipeline_prints(load_config(LOCAL_YAML, [f"balance.selection={out / name}"]))
              for name in ("a", "b")}
    plain = pipeline_prints(load_config(LOCAL_YAML))
    assert prints["a"]["regions"].fingerprint != prints["b"]["regions"].fingerprint != plain["regions"].fingerprint
    assert prints["a"]["detect"].fingerprint == plain["detect"].fingerprint  # nothing before the regions changes
