"""The data engine's model: FineViT-VL trained on synthetic scenes, from nothing, on a CPU in minutes.

`train_scene_model` draws scenes with exact captions and boxes (`finecap samples synth`), trains
stages I, II and III on them with the recipe `train-scenes.yaml` (this package), and exports the
stage III checkpoint as a model folder that vLLM and transformers load (finecap/export). The recipe
is a first attempt: docs/training.md ("The data engine") has the caption F1 it reached and what
comes next; neither that goal nor the loop's 10-minute budget has been met yet.

`build_cached` is the model registry's builder for `tiny:finevit-vl` (meant as the embedded
default's captioner once it reaches the loop's caption goal; docs/training.md): the registry
names its folder by `cache_key`, a hash of everything that decides the
weights (the recipe after overrides, the scene settings, the builder version), so a changed recipe
trains a new model and an unchanged one is trained once per cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)

RECIPE = "train-scenes.yaml"
STAGES = ("stage1", "stage2", "stage3")
MODEL_VERSION = "v1"  # bump when training or export code changes what a recipe produces


@dataclass(frozen=True)
class SceneModelSpec:
    """What the scene model is trained on and how; every field is part of the cache key."""

    scenes: int = 2000  # training scenes (all of them train: the held-out set is the loop's own)
    width: int = 320
    height: int = 240
    # Not 0: the bundled sample source draws scene i of seed s from the same generator as synth's
    # scene i of s (numpy default_rng([s, i])), only scaled, so seed 0 would train on the sample's
    # own scenes and its evaluation would measure memory. The loop's held-out scenes use seed 1.
    seed: int = 1000
    overrides: tuple[str, ...] = ()  # `--set` style keys on the recipe
    recipe: str = field(default="")  # a training YAML; empty: this package's train-scenes.yaml

    def recipe_path(self) -> Path:
        if self.recipe:
            return Path(self.recipe)
        return Path(str(resources.files("finecap.data_engine").joinpath(RECIPE)))

    def train_config(self, data: str | None = None, output: str | None = None):
        from finecap.train.config import load_train_config

        return load_train_config(self.recipe_path(), list(self.overrides),
                                 **{"data.uri": data, "run.output": output})


def cache_key(spec: SceneModelSpec) -> str:
    """12 hex digits of the recipe (as parsed, after overrides) plus the scene settings."""
    from finecap.typed_config import to_dict

    recipe = to_dict(spec.train_config())
    for volatile in ("output",):  # where a run writes changes no weight
        recipe["run"].pop(volatile, None)
    recipe["data"].pop("uri", None)
    settings = {"model_version": MODEL_VERSION, "recipe": recipe,
                "scenes": {k: v for k, v in asdict(spec).items() if k not in ("overrides", "recipe")}}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class TrainedModel:
    folder: Path  # the exported model folder
    seconds: dict[str, float]  # synth, stage1..3, export
    losses: dict[str, float]  # each stage's last logged loss


def train_scene_model(spec: SceneModelSpec, work: Path, out: Path) -> TrainedModel:
    """Synthesise `spec.scenes` scenes into WORK/synth, train WORK/run/stage1..3, export to OUT."""
    from finecap.export import export_checkpoint
    from finecap.samples.synth_dataset import write_synth_dataset
    from finecap.train.loop import run_stage

    work = Path(work)
    seconds, losses = {}, {}
    started = time.perf_counter()
    data = work / "synth"
    write_synth_dataset(str(data), spec.scenes, seed=spec.seed, heldout_fraction=0.0,  # the loop holds its own out
                        size=(spec.width, spec.height))
    seconds["synth"] = time.perf_counter() - started
    config = spec.train_config(data=str(data / "train"), output=str(work / "run"))
    for stage in STAGES:
        mark = time.perf_counter()
        summary = run_stage(config, stage)
        seconds[stage], losses[stage] = time.perf_counter() - mark, summary.loss
        logger.info("%s: step %d, loss %.4f (%.0f s)", stage, summary.step, summary.loss, seconds[stage])
    mark = time.perf_counter()
    folder = export_checkpoint(work / "run" / "stage3", out)
    seconds["export"] = time.perf_counter() - mark
    return TrainedModel(folder, seconds, losses)


def registry_key(seed: int) -> str:
    """The cache key of the default spec with this seed (the registry names the folder by it)."""
    return cache_key(SceneModelSpec(seed=seed))


def build_cached(target: Path, seed: int) -> Path:
    """The registry's builder for `tiny:finevit-vl`: train with the default spec into `target`.

    The training run's scenes and checkpoints are scratch, deleted afterwards; only the export stays.
    """
    spec = SceneModelSpec(seed=seed)
    work = Path(target) / "_work"  # inside the registry's temporary folder: a killed build leaves nothing
    logger.warning("training FineViT-VL on synthetic scenes for tiny:finevit-vl (once per cache; "
                   "a few minutes on a CPU)")
    try:
        export = Path(target) / "model"
        trained = train_scene_model(spec, work, export)
        for item in export.iterdir():  # the registry's folder is the model folder itself
            item.rename(Path(target) / item.name)
        export.rmdir()
        (Path(target) / "training.json").write_text(json.dumps(
            {"spec": asdict(spec), "key": cache_key(spec), "seconds": trained.seconds, "losses": trained.losses},
            indent=1) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Path(target)
