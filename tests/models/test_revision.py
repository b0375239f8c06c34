from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from finecap.models import revision
from finecap.models.revision import model_revision

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_safetensors(path: Path, shape: list[int], fill: int) -> None:
    """A valid one-tensor safetensors file (uint8), written by hand: header then data."""
    n = 1
    for d in shape:
        n *= d
    header = json.dumps({"w": {"dtype": "U8", "shape": shape, "data_offsets": [0, n]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes([fill]) * n)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"hidden_size": 8}')
    (d / "tokenizer.json").write_text("{}")
    (d / "chat_template.jinja").write_text("{{ messages }}")
    write_safetensors(d / "model.safetensors", [4, 4], fill=1)
    return d


def test_local_dir_hash_is_short_prefixed_and_stable(model_dir):
    rev = model_revision(str(model_dir))
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", rev)
    assert model_revision(str(model_dir)) == rev


@pytest.mark.parametrize(
    "name", ["config.json", "tokenizer.json", "chat_template.jinja", "generation_config.json"]
)
def test_config_files_count(model_dir, name):
    before = model_revision(str(model_dir))
    (model_dir / name).write_text('{"changed": true}')
    assert model_revision(str(model_dir)) != before


def test_other_files_do_not_count(model_dir):
    before = model_revision(str(model_dir))
    (model_dir / "README.md").write_text("notes")
    (model_dir / "sub").mkdir()
    (model_dir / "sub" / "config.json").write_text("{}")
    assert model_revision(str(model_dir)) == before


def test_small_weights_are_hashed_whole(model_dir):
    before = model_revision(str(model_dir))
    write_safetensors(model_dir / "model.safetensors", [4, 4], fill=2)  # same header, other values
    assert model_revision(str(model_dir)) != before


def test_big_weights_use_sizes_and_headers(model_dir, monkeypatch):
    monkeypatch.setattr(revision, "WHOLE_FILE_LIMIT", 16)  # our 16-byte tensor now counts as big
    before = model_revision(str(model_dir))
    write_safetensors(model_dir / "model.safetensors", [4, 4], fill=2)
    assert model_revision(str(model_dir)) == before  # values are not read
    write_safetensors(model_dir / "model.safetensors", [2, 8], fill=2)
    assert model_revision(str(model_dir)) != before  # header changed
    (model_dir / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    with_index = model_revision(str(model_dir))
    (model_dir / "model.safetensors.index.json").write_text('{"weight_map": {"w": "x"}}')
    assert model_revision(str(model_dir)) != with_index


def test_big_bin_weights_use_size(model_dir, monkeypatch):
    monkeypatch.setattr(revision, "WHOLE_FILE_LIMIT", 16)
    (model_dir / "pytorch_model.bin").write_bytes(b"a" * 32)
    before = model_revision(str(model_dir))
    (model_dir / "pytorch_model.bin").write_bytes(b"b" * 32)
    assert model_revision(str(model_dir)) == before
    (model_dir / "pytorch_model.bin").write_bytes(b"b" * 33)
    assert model_revision(str(model_dir)) != before


def test_dir_without_model_files_is_unknown(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    assert model_revision(str(tmp_path)) == "unknown"


def make_hub_cache(root: Path, name: str, snapshots: list[str], ref: str | None) -> None:
    repo = root / ("models--" + name.replace("/", "--"))
    for commit in snapshots:
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    if ref is not None:
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(ref + "\n")


def test_hub_name_resolves_to_cached_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    make_hub_cache(tmp_path, "org/model", [COMMIT, "f" * 40], ref=COMMIT)
    assert model_revision("org/model") == COMMIT


def test_hub_single_snapshot_without_ref(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    make_hub_cache(tmp_path / "hub", "org/model", [COMMIT], ref=None)
    assert model_revision("org/model") == COMMIT


def test_hub_ambiguous_or_missing_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    make_hub_cache(tmp_path, "org/two", [COMMIT, "f" * 40], ref=None)
    assert model_revision("org/two") == "unknown"
    assert model_revision("org/absent") == "unknown"
    assert model_revision("/no/such/dir") == "unknown"
