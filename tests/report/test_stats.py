import json

import numpy as np
import pytest

from finecap import storage
from finecap.report.hist import COUNT_EDGES, Numeric
from finecap.report.stats import collect_stats, write_stats
from tests.report.helpers import caption, detector, ocr, write_output

REGIONS = {
    "img01.png": [detector([0.1, 0.1, 0.5, 0.5], "a red box", "a box"), ocr([0.6, 0.6, 0.9, 0.7], "HELLO")],
    "img05.png": [detector([0.0, 0.0, 1.0, 1.0], "a big box"), detector([0.2, 0.2, 0.3, 0.3], "a cat")],
    "img08.png": [ocr([0.1, 0.1, 0.2, 0.2], "A"), ocr([0.3, 0.3, 0.4, 0.4], "B")],
}
CAPTIONS = {"img02.png": [caption("long", 40), caption("other", 100, "tiny:vlm-b")]}


@pytest.fixture
def output(local_config):
    """Ten images and a broken file in shards of 4 (3 shards), with known captions and regions."""
    cfg = local_config("source.shard_size=4")
    write_output(cfg, CAPTIONS, REGIONS)
    return cfg.output.uri


def test_counts_rows_rejects_captions_and_stage_times(output):
    stats = collect_stats(output)
    assert (stats["shards"], stats["rows_in"], stats["rows"], stats["rejects"]) == (3, 11, 10, 1)
    assert stats["rejects_by_reason"] == {"prepare/decode_error": 1}
    assert stats["rejects_by_stage"] == {"prepare": {"decode_error": 1}}
    vlm_a, vlm_b = stats["captions"]["tiny:vlm-a"], stats["captions"]["tiny:vlm-b"]
    assert (vlm_a["captions"], vlm_a["min_tokens"], vlm_a["max_tokens"]) == (10, 4, 40)
    assert vlm_a["mean_tokens"] == pytest.approx((9 * 4 + 40) / 10)
    assert vlm_a["prompts"] == {"global_detailed/v1": 10} and vlm_b["captions"] == 1
    assert sum(vlm_a["tokens"]["counts"]) == 10
    assert stats["captions_per_image"]["max"] == 2
    assert stats["stage_seconds"]["prepare"] > 0 and stats["stage_seconds_per_row"]["prepare"] > 0
    assert stats["data_bytes"] > 0


def test_regions_by_origin_categories_and_ocr_share(output):
    stats = collect_stats(output)
    regions = stats["regions"]
    assert regions["total"] == 6
    detector_stats, ocr_stats = regions["by_origin"]["detector"], regions["by_origin"]["ocr"]
    assert (detector_stats["regions"], detector_stats["images_with"]) == (3, 2)
    assert (ocr_stats["regions"], ocr_stats["images_with"]) == (3, 2)
    # every image counts in the per-image histogram, including the 8 without detector regions
    assert detector_stats["per_image"]["count"] == 10 and detector_stats["per_image"]["histogram"]["counts"][:3] == [8, 1, 1]
    assert detector_stats["area"]["max"] == 1 and ocr_stats["area"]["min"] == pytest.approx(0.01, abs=1e-6)
    assert stats["top_categories"]["detector"][0] == ["box", 2]
    assert stats["ocr"] == {"images_with_text": 2, "image_share": 0.2, "region_share": 0.5}
    assert regions["captioned_by"] == {"PP-OCRv4@1.4.4": 3, "(none)": 2, "tiny:vlm-a@sha256:aaaa": 1}


def test_image_sizes_quality_and_provenance(output):
    stats = collect_stats(output)
    width = stats["image_size"]["width"]
    assert (width["count"], width["min"], width["max"]) == (10, 64, 100)  # conftest: 64 + 4 * i px wide
    assert stats["image_size"]["height"]["mean"] == 48
    for name in ("blur", "brightness", "clipped", "saturation"):
        assert stats["quality"][name]["count"] == 10
    assert 0 <= stats["quality"]["brightness"]["min"] <= stats["quality"]["brightness"]["max"] <= 1
    prov = stats["provenance"]
    assert prov["config_hashes"] == ["sha256:test"] and prov["prompts"] == {"global_detailed/v1": "sha256:pppp"}
    assert prov["models"][0]["revision"] == "sha256:aaaa"
    path = write_stats(output, stats)
    assert json.loads(storage.read_bytes(path))["rows"] == 10


def test_shard_by_shard_summaries_equal_one_pass():
    values = np.random.default_rng(0).integers(0, 300, 1000)
    whole, parts = Numeric(COUNT_EDGES), Numeric(COUNT_EDGES)
    whole.add(values)
    for chunk in np.array_split(values, 7):
        parts.add(chunk)
    assert whole.to_dict() == parts.to_dict()
    assert whole.to_dict()["histogram"]["counts"][-1] == int((values >= 256).sum())


def test_repeated_values_are_counted_without_building_them():
    a, b = Numeric(COUNT_EDGES), Numeric(COUNT_EDGES)
    a.add([0] * 5 + [3])
    b.add([3])
    b.add_repeated(0, 5)
    assert a.to_dict() == b.to_dict()


def test_an_origin_first_seen_in_a_later_shard_still_counts_every_image(local_config):
    from finecap.stages.detect import region

    cfg = local_config("source.shard_size=4")
    write_output(cfg, regions_by_key={"sub/img09.png": [region([0.1, 0.1, 0.2, 0.2], "manual", category="flag")]})
    manual = collect_stats(cfg.output.uri)["regions"]["by_origin"]["manual"]
    assert (manual["regions"], manual["images_with"], manual["per_image"]["count"]) == (1, 1, 10)
    assert manual["per_image"]["histogram"]["counts"][:2] == [9, 1]


def test_only_committed_files_count_whatever_their_names(output, tmp_path):
    before = collect_stats(output)
    data = f"{output}/data"
    storage.write_bytes(f"{data}/part-000009.parquet", b"a shard still being written: never read")
    # shard 1 rebuilt: its manifest names the new file; the replaced version stays behind
    old = storage.read_bytes(f"{data}/part-000001.parquet")
    storage.write_bytes(f"{data}/part-000001-r2.parquet", old)
    storage.write_bytes(f"{data}/part-000001.parquet", b"the replaced version: never read")
    manifest = json.loads(storage.read_bytes(f"{output}/_manifest/part-000001.json"))
    manifest["files"]["data"] = "data/part-000001-r2.parquet"
    storage.write_bytes(f"{output}/_manifest/part-000001.json", json.dumps(manifest).encode())
    after = collect_stats(output)
    assert {k: v for k, v in after.items() if k != "data_bytes"} == {k: v for k, v in before.items() if k != "data_bytes"}
    assert after["data_bytes"] == before["data_bytes"]


def test_v1_and_v2_shards_are_summed_together(tmp_path):
    from tests.dataset.helpers import write_shard

    out = str(tmp_path / "out")
    write_shard(out, "part-000000", ["a", "b"], version="v1", rejected=("c",))
    write_shard(out, "part-000001", ["d"], version="v2", ocr_document=True)
    stats = collect_stats(out)
    assert (stats["rows"], stats["rejects"], stats["provenance"]["schema_versions"]) == (3, 1, ["v1", "v2"])
    assert stats["captions"]["m"]["captions"] == 3
