import io

import pyarrow as pa
import pytest
from PIL import Image

from finecap.stages.prepare import PrepareStage
from tests.conftest import png_bytes


def _batch(blobs):
    n = len(blobs)
    return pa.table(
        {
            "key": [f"k{i}" for i in range(n)],
            "shard": ["part-000000"] * n,
            "image_bytes": pa.array(blobs, pa.binary()),
        }
    )


def test_prepare_keeps_good_rows_and_rejects_bad_ones_with_reasons(local_config):
    stage = PrepareStage(local_config("prepare.model_max_side=32", "limits.max_pixels=100000"))
    big = io.BytesIO()
    Image.new("L", (400, 400)).save(big, format="PNG")
    out = stage(_batch([png_bytes((64, 48)), b"junk", None, big.getvalue()]))
    rows = {r["key"]: r for r in out.to_pylist()}
    good = rows["k0"]
    assert good["reject_stage"] is None and (good["width"], good["height"]) == (64, 48)
    assert len(good["sha256"]) == 64 and len(good["phash"]) == 16
    assert set(good["quality"]) == {"blur", "brightness", "clipped", "saturation"}
    assert max(Image.open(io.BytesIO(good["model_image"])).size) == 32
    assert (rows["k1"]["reject_stage"], rows["k1"]["reject_reason"]) == ("prepare", "decode_error")
    assert rows["k2"]["reject_reason"] == "empty"
    assert rows["k3"]["reject_reason"] == "too_many_pixels"
    assert out.column("_seconds_prepare").null_count == 0


def test_rows_rejected_upstream_pass_through_untouched(local_config):
    stage = PrepareStage(local_config())
    batch = _batch([png_bytes(), png_bytes()]).append_column(
        "reject_stage", pa.array(["read", None], pa.string())
    )
    batch = batch.append_column("reject_reason", pa.array(["unreadable", None], pa.string()))
    out = {r["key"]: r for r in stage(batch).to_pylist()}
    assert out["k0"]["reject_stage"] == "read" and out["k0"]["width"] is None
    assert out["k1"]["reject_stage"] is None and out["k1"]["width"] == 64


def _encoded(fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (30, 120, 200)).save(out, format=fmt, **kwargs)
    return out.getvalue()


def test_allowed_formats_come_from_the_config(local_config):
    blobs = [_encoded("PNG"), _encoded("JPEG"), _encoded("GIF")]
    default = PrepareStage(local_config())(_batch(blobs)).column("reject_reason").to_pylist()
    assert default == [None, None, None]
    only_png = PrepareStage(local_config("prepare.allowed_formats=[png]"))(_batch(blobs)).to_pylist()
    assert [r["reject_reason"] for r in only_png] == [None, "format_not_allowed", "format_not_allowed"]
    assert "JPEG is not in prepare.allowed_formats" in only_png[1]["reject_detail"]


def test_allowed_formats_are_checked_at_load(local_config):
    from finecap.config import ConfigError

    assert local_config("prepare.allowed_formats=[jpeg, Png]").prepare.allowed_formats == ["JPEG", "PNG"]
    with pytest.raises(ConfigError, match=r"^prepare.allowed_formats: unknown image format 'JPG' \(Pillow opens: "):
        local_config("prepare.allowed_formats=[JPG]")
    with pytest.raises(ConfigError, match=r"^prepare.allowed_formats: EPS is never allowed"):
        local_config("prepare.allowed_formats=[JPEG, eps]")
    with pytest.raises(ConfigError, match=r"^prepare.allowed_formats: at least one format"):
        local_config("prepare.allowed_formats=[]")
    with pytest.raises(ConfigError, match=r"^limits.max_pixels: must be <= 178956970"):
        local_config("limits.max_pixels=200000000")
