"""Model revisions for provenance: which exact weights and configs wrote a caption.

Every caption records `model_revision` (DESIGN.md, invariant 4). For a hub model that
is the commit it was downloaded at; for a local directory it is a hash of the files
that decide the model's behaviour. Stdlib only, so any worker can call it cheaply.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

UNKNOWN = "unknown"
PREFIX = "sha256:"
DIGEST_CHARS = 16
# Weights totalling at least this many bytes are identified by sizes and safetensors
# headers instead of whole-file hashes (reading hundreds of GB per worker is too slow).
WHOLE_FILE_LIMIT = 1 << 30  # 1 GiB

CONFIG_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
        "processor_config.json",
        "video_preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "tokenizer.model",
        "chat_template.jinja",
        "chat_template.json",
    }
)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_CHUNK = 1 << 20


def model_revision(name_or_path: str) -> str:
    """The revision of a model given by local directory or Hugging Face hub name.

    - Local directory: "sha256:" + the first 16 hex chars of a sha256 over, in name
      order, its config files (config.json, generation_config.json, processor,
      preprocessor and tokenizer files, chat template), any *.safetensors.index.json
      and its weight files (*.safetensors, *.bin, *.pt, *.pth), top level only. When
      the weights total under `WHOLE_FILE_LIMIT` (1 GiB) each weight file is hashed
      whole; otherwise each contributes its size and, for safetensors, its header
      (tensor names, dtypes, shapes, offsets), so big checkpoints hash in
      milliseconds. A directory with none of these files is "unknown".
    - Hub name ("org/model") found in the local HF cache: the snapshot's commit hash
      (refs/main, or the only snapshot when there is no ref).
    - Anything else: "unknown".
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _directory_revision(path)
    return _hub_cache_revision(name_or_path)


def _directory_revision(directory: Path) -> str:
    files = sorted(p for p in directory.iterdir() if p.is_file() and _is_tracked(p.name))
    if not files:
        return UNKNOWN
    weights = [p for p in files if p.name.endswith(WEIGHT_SUFFIXES)]
    whole = sum(p.stat().st_size for p in weights) < WHOLE_FILE_LIMIT
    digest = hashlib.sha256()
    for p in files:
        if p in weights and not whole:
            part = f"size={p.stat().st_size};header={_safetensors_header_hash(p)}"
        else:
            part = _file_sha256(p)
        digest.update(f"{p.name}\0{part}\n".encode())
    return PREFIX + digest.hexdigest()[:DIGEST_CHARS]


def _is_tracked(name: str) -> bool:
    return name in CONFIG_FILES or name.endswith(".safetensors.index.json") or name.endswith(WEIGHT_SUFFIXES)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _safetensors_header_hash(path: Path) -> str:
    """sha256 of the JSON header (8-byte little-endian length, then the header); "" if not safetensors."""
    if not path.name.endswith(".safetensors"):
        return ""
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            return ""
        (length,) = struct.unpack("<Q", raw)
        if length > path.stat().st_size - 8:
            return ""
        return hashlib.sha256(f.read(length)).hexdigest()


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (same rules as huggingface_hub)."""
    if cache := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(cache).expanduser()
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _hub_cache_revision(name: str) -> str:
    if name.count("/") > 1 or not name.strip("/"):
        return UNKNOWN
    repo = hf_hub_cache() / ("models--" + name.replace("/", "--"))
    snapshots = repo / "snapshots"
    ref = repo / "refs" / "main"
    if ref.is_file():
        commit = ref.read_text().strip()
        if commit and (snapshots / commit).is_dir():
            return commit
    found = sorted(p.name for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []
    return found[0] if len(found) == 1 else UNKNOWN
