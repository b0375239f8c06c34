"""What is published carries no credential: storage URIs lose query strings and passwords, free text
loses signature parameters and secret values; a committed shard and its manifest hold neither."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finecap import storage
from finecap.redact import MASK, public_uri, redact_text
from finecap.runtime.commit import ShardProgress, commit_shard
from tests.runtime.helpers import finished_shard, stage_pieces

PRESIGNED = ("https://bucket.s3.amazonaws.com/lists/urls.parquet?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAFAKE%2F20261201&X-Amz-Signature=0123abcd&X-Amz-Security-Token=tok")


@pytest.mark.parametrize(("uri", "public"), [
    (PRESIGNED, "https://bucket.s3.amazonaws.com/lists/urls.parquet"),
    ("http://user:pw@10.0.0.5:8000/out#x", "http://10.0.0.5:8000/out"),
    ("s3://AKIA:SECRET@bucket/part-??.parquet", "s3://bucket/part-??.parquet"),  # a glob's `?` stays
    ("s3://bucket/key?versionId=3", "s3://bucket/key"),
    ("gs://bucket/with#hash.jpg", "gs://bucket/with#hash.jpg"),
    ("/data/images/img?.png", "/data/images/img?.png"),  # local paths: as given
    (None, None),
])
def test_public_uri(uri, public):
    assert public_uri(uri) == public


def test_redact_text_masks_signature_parameters_passwords_and_secret_values(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrFAKEsecretKEY")
    monkeypatch.setenv("MY_API_KEY", "sk-live-0000")
    text = (f"403 for {PRESIGNED} via http://bob:hunter2@proxy/ key wJalrFAKEsecretKEY, sk-live-0000; "
            "https://h/i.jpg?w=640&sig=abc&token=t&access_token=a&key=k")
    out = redact_text(text, ("MY_API_KEY",))
    for secret in ("0123abcd", "AKIAFAKE", "=tok", "hunter2", "wJalrFAKEsecretKEY", "sk-live-0000",
                   "sig=abc", "token=t&", "access_token=a", "key=k"):
        assert secret not in out
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in out and "w=640" in out  # the rest stays readable
    assert f"X-Amz-Signature={MASK}" in out and f"bob:{MASK}@proxy" in out
    assert redact_text("nothing secret", ()) == "nothing secret" and redact_text(None) is None


def test_a_committed_shard_and_its_manifest_publish_no_query_string_or_secret(local_config, monkeypatch):
    from finecap.runtime.runner import run_facts

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrFAKEsecretKEY")
    cfg = local_config(**{"phrases.enabled": False, "detect.enabled": False, "ocr.enabled": False,
                          "regions.enabled": False, "caption.enabled": False})
    spec, rows = finished_shard(cfg)
    rows = rows.set_column(rows.schema.get_field_index("source"), "source", pa.array([PRESIGNED] * rows.num_rows))
    detail = rows.schema.get_field_index("reject_detail")
    details = [d and f"{d} (read {PRESIGNED} with wJalrFAKEsecretKEY)" for d in rows.column(detail).to_pylist()]
    rows = rows.set_column(detail, "reject_detail", pa.array(details, pa.string()))
    cfg.source.uri = PRESIGNED  # as a URL-list build reading a presigned list would have it
    progress = ShardProgress(spec.shard_id, spec.num_rows)
    for piece in stage_pieces(cfg, rows):
        progress.add(piece)
    commit_shard(cfg.output.uri, progress, run_facts(cfg), "zstd")

    out = cfg.output.uri
    manifest = json.loads(storage.read_bytes(f"{out}/_manifest/{spec.shard_id}.json"))
    assert manifest["source"] == "https://bucket.s3.amazonaws.com/lists/urls.parquet"
    data = pq.read_table(f"{out}/data/{spec.shard_id}.parquet")
    rejects = pq.read_table(f"{out}/rejects/{spec.shard_id}.parquet")
    assert rejects.num_rows and data.num_rows
    assert set(data.column("source").to_pylist()) == set(rejects.column("source").to_pylist()) == {
        "https://bucket.s3.amazonaws.com/lists/urls.parquet"}
    for published in [json.dumps(manifest), *map(str, rejects.column("detail").to_pylist())]:
        assert "X-Amz-Signature=0123abcd" not in published and "wJalrFAKEsecretKEY" not in published
