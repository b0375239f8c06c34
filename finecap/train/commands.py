"""`finecap train` and `finecap eval`: argument parsing only; torch loads inside the handlers."""

from __future__ import annotations

import argparse
import json
import os

from finecap.train import ray_launch

STAGE_CHOICES = ("stage1", "stage2", "stage3")


def _train(args: argparse.Namespace) -> int:
    if ray_launch.wanted(args):  # torchrun on several nodes of a Ray cluster
        return ray_launch.launch(args)
    from finecap.train.config import load_train_config
    from finecap.train.loop import run_stage

    config = load_train_config(args.config, args.set, **{"data.uri": args.data, "run.output": args.output})
    summary = run_stage(config, args.stage)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary line
        print(f"{summary.stage}: step {summary.step}, loss {summary.loss:.4f}, checkpoint {summary.checkpoint}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.task == "retrieval":
        from finecap.train.eval_retrieval import evaluate_retrieval

        result = evaluate_retrieval(args.checkpoint, args.data, limit=args.limit)
    else:
        from finecap.train.eval_grounding import evaluate_grounding

        result = evaluate_grounding(args.checkpoint, args.data, limit=args.limit)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


def register(subparsers) -> None:
    """Add `train` and `eval` to the `finecap` command."""
    train = subparsers.add_parser("train", help="train a FineViT stage on finecap shards")
    train.add_argument("stage", choices=STAGE_CHOICES, help="stage1 (MIM), stage2 (SigLIP), stage3 (LLM alignment)")
    train.add_argument("--config", required=True, help="training YAML, e.g. pipelines/train-tiny.yaml")
    train.add_argument("--data", help="finecap output URI to train on (overrides data.uri)")
    train.add_argument("--output", help="run directory; the stage writes OUTPUT/STAGE (overrides run.output)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    ray_launch.add_arguments(train)
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser("eval", help="evaluate a FineViT checkpoint")
    evaluate.add_argument("task", choices=("retrieval", "grounding"),
                          help="retrieval: stage II checkpoint; grounding: stage III checkpoint")
    evaluate.add_argument("--checkpoint", required=True, help="checkpoint dir, stage dir or run output")
    evaluate.add_argument("--data", required=True, help="finecap output URI to evaluate on (e.g. OUT/heldout)")
    evaluate.add_argument("--limit", type=int, help="use only the first N rows")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    evaluate.set_defaults(func=_eval)
