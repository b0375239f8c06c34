"""`finecap data-engine OUT`: argument parsing only (torch, Ray and vLLM load inside the run)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from finecap.data_engine.loop import LoopSettings, run_loop
    from finecap.data_engine.scene_model import SceneModelSpec

    spec = SceneModelSpec(scenes=args.scenes, width=args.width, height=args.height, seed=args.seed,
                          overrides=tuple(args.train_set), recipe=args.recipe or "")
    settings = LoopSettings(output=Path(args.output), pipeline=Path(args.config), spec=spec, heldout=args.heldout,
                            heldout_seed=args.heldout_seed, build_overrides=tuple(args.set))
    record = run_loop(settings)
    # stderr: the evaluation's JSON object stays the last line of stdout.
    print(f"data engine: {json.dumps(record['seconds'])} s; model {record['model']}", file=sys.stderr)
    return 0


def add_parser(subparsers) -> None:
    """Add `data-engine` to the `finecap` command."""
    loop = subparsers.add_parser(
        "data-engine", help="train FineViT-VL on synthetic scenes, export it, build held-out scenes with it "
        "as captioner and grounder, and score the build against their truth (last line: the evaluation's JSON)")
    loop.add_argument("output", help="folder for every step's output (work/, model/, heldout-source/, heldout/)")
    loop.add_argument("--config", default="pipelines/data-engine.yaml", help="the held-out build's pipeline")
    loop.add_argument("--scenes", type=int, default=2000, help="training scenes")
    loop.add_argument("--width", type=int, default=320, help="scene base width (training and held-out)")
    loop.add_argument("--height", type=int, default=240, help="scene base height")
    loop.add_argument("--seed", type=int, default=1000, help="training scenes' seed")
    loop.add_argument("--heldout", type=int, default=24, help="held-out scenes")
    loop.add_argument("--heldout-seed", type=int, default=1, help="held-out scenes' seed (not the training one)")
    loop.add_argument("--recipe", help="training YAML (default: finecap/data_engine/train-scenes.yaml)")
    loop.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a training recipe key (e.g. stage3.steps=400)")
    loop.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a key of the held-out build's pipeline")
    loop.set_defaults(func=_run)
