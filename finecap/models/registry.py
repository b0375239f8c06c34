"""Names of the embedded default's tiny models, and where they live.

Pipelines name the tiny models as `tiny:NAME` (e.g. `tiny:vlm-a`). `resolve_model`
turns such a reference into a local directory under the FineCap cache, building the
model the first time: the random-weight VLMs and detector in seconds, `tiny:finevit-vl`
(FineViT-VL trained on synthetic scenes, finecap/data_engine) in minutes, in a folder
named by the key of its training recipe. Several Ray workers may resolve the same name at once, so a
build happens under an inter-process file lock, into a temporary directory that is
renamed into place: a model directory that exists is always complete.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

TINY_PREFIX = "tiny:"
# Bump when any builder's output changes, so caches from older builders are not reused.
BUILDER_VERSION = "v1"


@dataclass(frozen=True)
class TinyModel:
    kind: str  # "vlm" | "gdino" | "finevit-vl"
    seed: int
    description: str
    trained: bool = False  # trained here (minutes), not random weights built from a config (seconds)


TINY_MODELS: dict[str, TinyModel] = {
    "vlm-a": TinyModel("vlm", 0, "tiny random Idefics3 VLM (captioner A)"),
    "vlm-b": TinyModel("vlm", 1, "tiny random Idefics3 VLM with other weights (captioner B)"),
    "gdino": TinyModel("gdino", 0, "tiny random Grounding DINO detector"),
    # Not random: trained here on synthetic scenes (minutes on a CPU) by the data engine's recipe;
    # seed 1000 keeps its scenes apart from the sample source's (seed 0, data_engine/scene_model.py).
    "finevit-vl": TinyModel("finevit-vl", 1000, "FineViT-VL trained on synthetic scenes (finecap/data_engine)",
                            trained=True),
}


_BUILDERS = {
    "vlm": ("finecap.models.tiny_vlm", "build_tiny_vlm"),
    "gdino": ("finecap.models.tiny_gdino", "build_tiny_grounding_dino"),
    "finevit-vl": ("finecap.data_engine.scene_model", "build_cached"),
}
# Kinds whose folder is named by a key of their recipe as well, so a changed recipe builds anew
# instead of reusing a model trained on another one.
_KEYS = {"finevit-vl": ("finecap.data_engine.scene_model", "registry_key")}


def is_tiny_ref(ref: str) -> bool:
    return ref.startswith(TINY_PREFIX)


def cache_dir() -> Path:
    """$FINECAP_CACHE, else $XDG_CACHE_HOME/finecap, else ~/.cache/finecap."""
    if env := os.environ.get("FINECAP_CACHE"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "finecap"


def tiny_models_dir() -> Path:
    return cache_dir() / "models" / BUILDER_VERSION


def resolve_model(ref: str) -> str:
    """A `tiny:NAME` reference -> its cached directory (built on first use); anything else unchanged."""
    if not is_tiny_ref(ref):
        return ref
    name = ref.removeprefix(TINY_PREFIX)
    _check_name(name)
    return str(_ensure_built(name, tiny_models_dir()))


def random_models() -> list[str]:
    """The tiny models built from a config with random weights (seconds each)."""
    return [name for name, spec in TINY_MODELS.items() if not spec.trained]


def build_all_tiny(directory: Path, force: bool = False) -> dict[str, Path]:
    """Build every random-weight tiny model into `directory/NAME` (for `finecap models build-tiny DIR`);
    `tiny:finevit-vl` trains for minutes, on first use only.

    Complete existing model directories are kept unless `force`; builds are
    deterministic, so a rebuild only matters after the builders changed.
    """
    directory = Path(directory)
    return {name: _ensure_built(name, directory, force=force) for name in random_models()}


def _check_name(name: str) -> None:
    if name not in TINY_MODELS:
        known = ", ".join(TINY_PREFIX + n for n in TINY_MODELS)
        raise ValueError(f"unknown tiny model {TINY_PREFIX}{name!r}; known: {known}")


def _builder(kind: str) -> Callable[[Path, int], Path]:
    # Imported on use: torch and transformers take seconds to import, and most callers
    # of this module only resolve names that are already built.
    module, function = _BUILDERS[kind]
    return getattr(importlib.import_module(module), function)


def folder_name(name: str) -> str:
    """The cache folder of a tiny model: its name, plus its recipe's key for keyed kinds."""
    spec = TINY_MODELS[name]
    if spec.kind not in _KEYS:
        return name
    module, function = _KEYS[spec.kind]
    return f"{name}-{getattr(importlib.import_module(module), function)(spec.seed)}"


def _ensure_built(name: str, parent: Path, force: bool = False) -> Path:
    target = parent / folder_name(name)
    if target.is_dir() and not force:
        return target
    parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(parent / f".{target.name}.lock"):
        if target.is_dir() and not force:
            return target  # another process built it while we waited
        for stale in parent.glob(f".{target.name}.tmp-*"):  # left by a killed builder; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        spec = TINY_MODELS[name]
        logger.info("building %s%s (%s) into %s", TINY_PREFIX, name, spec.description, target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        try:
            _builder(spec.kind)(tmp, spec.seed)
            _make_world_readable(tmp)
            if target.exists():  # force: move the old copy aside, then swap
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
                target.rename(old / target.name)
                tmp.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _make_world_readable(directory: Path) -> None:
    """mkdtemp makes 0700 dirs and some writers 0600 files; shared caches need them readable."""
    directory.chmod(0o755)
    for p in directory.iterdir():
        p.chmod(0o755 if p.is_dir() else 0o644)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive fcntl lock: released by the OS if the holder dies, so no stale locks."""
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
