import io

import pyarrow as pa
import pyarrow.parquet as pq

from finecap.schema import conform, load_schema, validate_table
from tests.conftest import png_bytes


def _row(**overrides):
    row = {
        "key": "k1",
        "url": "file:///x.png",
        "image": {"bytes": png_bytes(), "path": "x.png"},
        "width": 64,
        "height": 48,
        "sha256": "ab" * 32,
        "captions": [{"text": "a red square", "model": "m", "model_revision": "r", "prompt_id": "p/v1", "num_tokens": 3}],
        "regions": [{"bbox": [0.1, 0.1, 0.5, 0.6], "origin": "detector", "phrase": "square"}],
        "provenance": {"finecap_version": "0", "schema_version": "v1", "config_hash": "h", "shard": "part-000000"},
    }
    row.update(overrides)
    return row


def test_schema_json_is_the_truth_for_arrow_and_features():
    schema = load_schema()
    assert schema.version == "v3"
    assert schema.arrow.names == schema.field_names
    assert schema.arrow.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert b"huggingface" in schema.arrow.metadata
    assert {"key", "image", "captions", "provenance"} <= schema.required()
    assert set(schema.rejects_arrow.names) >= {"key", "shard", "stage", "reason", "detail"}


def test_v2_adds_fields_and_v1_stays_loadable():
    v1, v2 = load_schema("v1"), load_schema("v2")
    assert set(v2.field_names) - set(v1.field_names) == {"ocr_document"}
    assert set(v2.rejects_arrow.names) - set(v1.rejects_arrow.names) == {"alt_text"}
    provenance = {f.name for f in v2.arrow.field("provenance").type}
    assert provenance - {f.name for f in v1.arrow.field("provenance").type} == {"fingerprints", "version"}


def test_v3_adds_the_quality_signals():
    v2, v3 = load_schema("v2"), load_schema("v3")
    assert set(v3.field_names) - set(v2.field_names) == {"signals"}
    assert "signals" not in v3.required()  # null where the quality stage did not run

    def struct_names(schema, column):
        return {f.name for f in schema.arrow.field(column).type.value_type}

    assert struct_names(v3, "captions") - struct_names(v2, "captions") == {"signals"}
    assert struct_names(v3, "regions") - struct_names(v2, "regions") == {"agreement"}
    # A v2 row's captions and regions cast to v3 as they are, the new fields null (the writer's conform).
    v2_captions = pa.array([[{"text": "a", "model": "m", "model_revision": "r", "prompt_id": "p", "num_tokens": 1}]],
                           v2.arrow.field("captions").type)
    assert v2_captions.cast(v3.arrow.field("captions").type).to_pylist()[0][0]["signals"] is None


def test_written_table_loads_in_datasets_with_pil_images(tmp_path):
    import datasets
    from PIL import Image

    schema = load_schema()
    table = conform(pa.Table.from_pylist([_row()]), schema.arrow)
    assert validate_table(table, schema.arrow, schema.required()) == []
    pq.write_table(table, tmp_path / "part.parquet")
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "part.parquet"), split="train")
    assert isinstance(ds[0]["image"], Image.Image)
    assert ds[0]["captions"][0]["prompt_id"] == "p/v1"
    assert ds[0]["regions"][0]["bbox"] == [0.10000000149011612, 0.10000000149011612, 0.5, 0.6000000238418579]


def test_validate_table_reports_missing_wrong_and_null_columns():
    schema = load_schema()
    table = conform(pa.Table.from_pylist([_row()]), schema.arrow)
    assert "missing column 'phash'" in validate_table(table.drop(["phash"]), schema.arrow)
    wrong = table.set_column(table.schema.get_field_index("width"), "width", pa.array(["64"]))
    assert any("column 'width' has type string" in p for p in validate_table(wrong, schema.arrow))
    nulls = table.set_column(0, "key", pa.nulls(1, pa.string()))
    assert any("'key' has 1 nulls" in p for p in validate_table(nulls, schema.arrow, schema.required()))
    extra = table.append_column("junk", pa.array([1]))
    assert any("unexpected columns ['junk']" in p for p in validate_table(extra, schema.arrow))


def test_conform_orders_and_fills_absent_columns():
    schema = load_schema()
    table = conform(pa.table({"height": [1], "key": ["a"]}), schema.arrow)
    assert table.schema.names == schema.arrow.names
    assert table.column("url").null_count == 1
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    assert b"huggingface" in pq.read_schema(io.BytesIO(buffer.getvalue())).metadata
