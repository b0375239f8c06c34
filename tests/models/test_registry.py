from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finecap.models.registry import (
    BUILDER_VERSION,
    TINY_MODELS,
    build_all_tiny,
    cache_dir,
    random_models,
    resolve_model,
)
from finecap.models.revision import model_revision

# Two children wait for "go", then resolve at the same time: one builds (importing torch
# and transformers under the lock, several seconds), the other must wait and reuse its build.
CHILD = """
import logging, sys, time
from pathlib import Path
from finecap.models.registry import resolve_model
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
Path(sys.argv[1]).touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
print(resolve_model("tiny:gdino"))
"""


def test_cache_dir_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("FINECAP_CACHE", str(tmp_path / "fc"))
    assert cache_dir() == tmp_path / "fc"
    monkeypatch.delenv("FINECAP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "finecap"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "finecap"


@pytest.mark.parametrize("ref", ["HuggingFaceTB/SmolVLM-256M-Instruct", "/models/my-vlm", "tinyllama/x"])
def test_other_refs_pass_through(ref):
    assert resolve_model(ref) == ref


def test_unknown_tiny_name_lists_known_ones():
    with pytest.raises(ValueError, match="tiny:vlm-a") as err:
        resolve_model("tiny:nope")
    assert all(f"tiny:{name}" in str(err.value) for name in TINY_MODELS)


def test_resolve_builds_once_into_cache(tmp_path, monkeypatch, tiny_gdino_dir):
    monkeypatch.setenv("FINECAP_CACHE", str(tmp_path))
    parent = tmp_path / "models" / BUILDER_VERSION
    parent.mkdir(parents=True)
    (parent / ".gdino.tmp-killed").mkdir()  # left by a builder that died

    path = Path(resolve_model("tiny:gdino"))
    assert path == parent / "gdino"
    assert model_revision(str(path)) == model_revision(str(tiny_gdino_dir))
    assert not list(parent.glob(".gdino.tmp-*"))
    inode = path.stat().st_ino
    assert resolve_model("tiny:gdino") == str(path)
    assert path.stat().st_ino == inode  # reused, not rebuilt


def test_concurrent_resolve_from_two_processes(tmp_path, tiny_gdino_dir):
    env = {**os.environ, "FINECAP_CACHE": str(tmp_path / "cache")}
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(r), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "children did not start"
            assert all(c.poll() is None for c in children), "a child died before the race"
            time.sleep(0.05)
        go.touch()
        results = [c.communicate(timeout=120) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
    assert [c.returncode for c in children] == [0, 0], [err for _, err in results]
    outputs = [out.strip() for out, _ in results]
    assert sum(err.count("building tiny:gdino") for _, err in results) == 1  # one built, one waited
    assert outputs[0] == outputs[1] == str(tmp_path / "cache" / "models" / BUILDER_VERSION / "gdino")
    parent = Path(outputs[0]).parent
    assert sorted(p.name for p in parent.iterdir()) == [".gdino.lock", "gdino"]
    assert model_revision(outputs[0]) == model_revision(str(tiny_gdino_dir))


def test_build_all_tiny(tmp_path):
    built = build_all_tiny(tmp_path)
    assert set(built) == set(random_models()) == set(TINY_MODELS) - {"finevit-vl"}  # that one trains
    assert all(built[name] == tmp_path / name and (built[name] / "config.json").is_file() for name in built)
    assert all(p.stat().st_mode & 0o444 == 0o444 for p in built["vlm-a"].rglob("*"))  # shareable
    assert built["vlm-a"].stat().st_mode & 0o555 == 0o555
    revisions = {name: model_revision(str(path)) for name, path in built.items()}
    assert len(set(revisions.values())) == len(built)  # vlm-a and vlm-b differ

    rebuilt = build_all_tiny(tmp_path, force=True)
    assert {name: model_revision(str(path)) for name, path in rebuilt.items()} == revisions
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == sorted(built)
