import yaml

from finecap.report.card import card_header, shard_schema
from finecap.schema import SCHEMA_VERSION


def _stats(*versions: str) -> dict:
    return {"rows": 5, "provenance": {"schema_versions": list(versions)}}


def _features(stats: dict) -> set[str]:
    header = yaml.safe_load(card_header(stats, 100, "t").strip().strip("-"))
    return {f["name"] for f in header["dataset_info"]["features"]}


def test_the_card_describes_the_schema_version_the_shards_were_written_with():
    assert shard_schema(_stats("v1")).version == "v1"
    assert "ocr_document" not in _features(_stats("v1"))  # a v1 output keeps loading with datasets
    assert "ocr_document" in _features(_stats("v2"))
    assert shard_schema(_stats("v1", "v2")).version == SCHEMA_VERSION
