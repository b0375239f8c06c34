"""`finecap data-engine OUT`: the loop in one command, every step's output kept under OUT.

  OUT/work/synth, OUT/work/run   the training scenes and the stage I-III checkpoints
  OUT/model                      the exported FineViT-VL folder (finecap/export)
  OUT/heldout-source             scenes of another seed as an image folder, with truth.coco.json
  OUT/heldout                    the held-out build: the whole pipeline (pipelines/data-engine.yaml)
                                 with the trained model as captioner, region captioner and grounder
  OUT/heldout/report/eval_dataset.json   `finecap eval dataset` of that build against the truth
  OUT/data-engine.json           what ran, its seconds and the headline figures

The held-out build names its trained model `tiny:finevit-vl` (the registry's cached scene model);
the loop points every such reference at the model it has just trained, so the pipeline file is the
one a user reads and the figures are this run's, never a cached model's.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from finecap.data_engine.scene_model import SceneModelSpec, train_scene_model
from finecap.errors import UserError

TRAINED_REF = "tiny:finevit-vl"


@dataclass
class LoopSettings:
    output: Path
    pipeline: Path  # the held-out build's pipeline YAML
    spec: SceneModelSpec = field(default_factory=SceneModelSpec)
    heldout: int = 24  # held-out scenes
    heldout_seed: int = 1
    build_overrides: tuple[str, ...] = ()


def trained_model_overrides(config_path: Path, model: Path) -> list[str]:
    """`--set` keys pointing every `tiny:finevit-vl` of the pipeline at `model`."""
    from finecap.config import load_config

    config = load_config(config_path)
    keys = [f"caption.captioners.{i}.model" for i, c in enumerate(config.caption.captioners)
            if c.model == TRAINED_REF]
    if config.regions.captioner and config.regions.captioner.model == TRAINED_REF:
        keys.append("regions.captioner.model")
    if config.detect.grounder and config.detect.grounder.model == TRAINED_REF:
        keys.append("detect.grounder.model")
    if not keys:
        raise UserError(f"{config_path} uses no {TRAINED_REF} model: the loop would not test what it trained")
    return [f"{key}={model}" for key in keys]


def run_loop(settings: LoopSettings) -> dict:
    """Train, export, build the held-out scenes, evaluate; returns OUT/data-engine.json's record."""
    from finecap.config import load_config
    from finecap.quality import cli as eval_cli
    from finecap.quality.truth import TRUTH_FILE
    from finecap.runtime.runner import run_build
    from finecap.samples.source import write_sample_source

    out = Path(settings.output)
    if settings.heldout_seed == settings.spec.seed:
        raise UserError(f"--heldout-seed {settings.heldout_seed} is the training seed: held-out scenes "
                        "would be training scenes")
    started = time.perf_counter()
    load_config(settings.pipeline, list(settings.build_overrides))  # a wrong config fails before training
    trained = train_scene_model(settings.spec, out / "work", out / "model")
    seconds = dict(trained.seconds)
    mark = time.perf_counter()
    source = write_sample_source(out / "heldout-source", n_scenes=settings.heldout, seed=settings.heldout_seed,
                                 include_photos=False, base_size=(settings.spec.width, settings.spec.height))
    overrides = [*trained_model_overrides(settings.pipeline, trained.folder), *settings.build_overrides]
    config = load_config(settings.pipeline, overrides, **{"source.uri": str(source),
                                                           "output.uri": str(out / "heldout")})
    summary = run_build(config, resume=False)
    seconds["build"] = time.perf_counter() - mark
    mark = time.perf_counter()
    truth = str(source / TRUTH_FILE)
    eval_args = argparse.Namespace(output=str(out / "heldout"), truth=truth, against=None, vocabulary=None,
                                   limit=None, save=True, json=False)
    eval_cli.run(eval_args)  # prints the table, then the evaluation's JSON object as its last line
    seconds["eval"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    record = {"output": str(out), "model": str(trained.folder), "spec": asdict(settings.spec),
              "heldout": settings.heldout, "heldout_seed": settings.heldout_seed, "build": summary.line(),
              "seconds": {k: round(v, 1) for k, v in seconds.items()}, "losses": trained.losses,
              "evaluation": str(out / "heldout" / "report" / eval_cli.RESULT_FILE)}
    (out / "data-engine.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
