"""`finecap train` and `finecap eval`: argument parsing only; torch loads inside the handlers."""

from __future__ import annotations

import argparse
import json

from finecap.train import ray_launch, stage_command


def _train(args: argparse.Namespace) -> int:
    if ray_launch.wanted(args):  # torchrun on several nodes of a Ray cluster
        return ray_launch.launch(args)
    return stage_command.run(args)


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
    stage_command.add_arguments(train)
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
