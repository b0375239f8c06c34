"""`finecap train` and `finecap eval`: argument parsing only; torch loads inside the handlers.

`finecap eval retrieval|grounding` score FineViT checkpoints; `finecap eval dataset` scores a built
dataset against ground truth (finecap/quality/cli.py).
"""

from __future__ import annotations

import argparse
import json

from finecap.train import ray_launch, stage_command


def _train(args: argparse.Namespace) -> int:
    if ray_launch.wanted(args):  # torchrun on several nodes of a Ray cluster
        return ray_launch.launch(args)
    return stage_command.run(args)


def _eval(args: argparse.Namespace) -> int:
    if args.eval_task == "retrieval":
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

    evaluate = subparsers.add_parser("eval", help="evaluate a FineViT checkpoint or a built dataset")
    tasks = evaluate.add_subparsers(dest="eval_task", required=True)
    for task, what in (("retrieval", "a stage II checkpoint: image-text retrieval"),
                       ("grounding", "a stage III checkpoint: region grounding")):
        checkpoint = tasks.add_parser(task, help=what)
        checkpoint.add_argument("--checkpoint", required=True, help="checkpoint dir, stage dir or run output")
        checkpoint.add_argument("--data", required=True, help="finecap output URI to evaluate on (e.g. OUT/heldout)")
        checkpoint.add_argument("--limit", type=int, help="use only the first N rows")
        checkpoint.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        checkpoint.set_defaults(func=_eval)
    from finecap.quality.cli import add_parser as add_dataset_eval

    add_dataset_eval(tasks)
