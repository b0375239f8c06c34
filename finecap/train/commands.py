"""`finecap train` and `finecap eval`: argument parsing only; torch loads inside the handlers.

`finecap eval retrieval|grounding` score FineViT checkpoints on finecap shards; `eval zeroshot`,
`eval retrieval --protocol karpathy` and `eval longtext` run the paper's benchmark protocols on
files the user has (finecap/train/eval_zeroshot.py, eval_karpathy.py, eval_longtext.py); `eval
ablation` scores checkpoints of each stage on the local tasks (finecap/train/eval_ablation.py);
`finecap eval dataset` scores a built dataset against ground truth (finecap/quality/cli.py).
"""

from __future__ import annotations

import argparse
import json

from finecap.errors import UserError
from finecap.train import ray_launch, stage_command

KARPATHY_FLAGS = ("karpathy", "images", "split", "max_captions")


def _train(args: argparse.Namespace) -> int:
    if ray_launch.wanted(args):  # torchrun on several nodes of a Ray cluster
        return ray_launch.launch(args)
    return stage_command.run(args)


def _print(result: dict, as_json: bool) -> int:
    print(json.dumps(result) if as_json else json.dumps(result, indent=2))
    return 0


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _retrieval(args: argparse.Namespace) -> int:
    given = [_flag(f) for f in KARPATHY_FLAGS if getattr(args, f) is not None]
    if args.protocol == "finecap":
        if given:
            raise UserError(f"{', '.join(given)}: only with --protocol karpathy (--protocol finecap reads --data)")
        if args.data is None:
            raise UserError("eval retrieval --protocol finecap needs --data URI (finecap shards)")
        from finecap.train.eval_retrieval import evaluate_retrieval

        return _print(evaluate_retrieval(args.checkpoint, args.data, limit=args.limit,
                                         batch_size=args.batch_size), args.json)
    if args.data is not None:
        raise UserError("--data: only with --protocol finecap (--protocol karpathy reads --karpathy and --images)")
    if args.karpathy is None or args.images is None:
        raise UserError("eval retrieval --protocol karpathy needs --karpathy FILE and --images DIR")
    from finecap.train.eval_karpathy import evaluate_karpathy

    return _print(evaluate_karpathy(args.checkpoint, args.karpathy, args.images, args.split or "test",
                                    limit=args.limit, max_captions=args.max_captions,
                                    batch_size=args.batch_size), args.json)


def _grounding(args: argparse.Namespace) -> int:
    from finecap.train.eval_grounding import evaluate_grounding

    return _print(evaluate_grounding(args.checkpoint, args.data, limit=args.limit), args.json)


def _zeroshot(args: argparse.Namespace) -> int:
    from finecap.train.eval_zeroshot import evaluate_zeroshot

    return _print(evaluate_zeroshot(args.checkpoint, args.classes, args.templates, folder=args.folder,
                                    labels=args.labels, images=args.images, limit=args.limit,
                                    batch_size=args.batch_size), args.json)


def _longtext(args: argparse.Namespace) -> int:
    from finecap.train.eval_longtext import evaluate_longtext

    return _print(evaluate_longtext(args.checkpoint, args.pairs, args.images, text_length=args.text_length,
                                    split=args.split, limit=args.limit, batch_size=args.batch_size), args.json)


def _ablation(args: argparse.Namespace) -> int:
    from finecap.train.eval_ablation import evaluate_ablation, format_table

    result = evaluate_ablation(args.checkpoints, args.data, train_data=args.train_data, probe_steps=args.probe_steps,
                               limit=args.limit, work=args.work, overrides=args.set, keep_probes=args.keep_probes)
    print(json.dumps(result) if args.json else format_table(result))
    return 0


def _common(parser: argparse.ArgumentParser, batch_size: int | None = 64) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint dir, stage dir or run output")
    parser.add_argument("--limit", type=int, help="use only the first N rows / images")
    if batch_size is not None:
        parser.add_argument("--batch-size", type=int, default=batch_size,
                            help=f"images or texts per forward pass (default {batch_size})")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _add_retrieval(tasks) -> None:
    p = tasks.add_parser("retrieval", help="a stage II checkpoint: image-text retrieval R@1/5/10")
    _common(p)
    p.add_argument("--protocol", choices=["finecap", "karpathy"], default="finecap",
                   help="finecap (default): held-out finecap shards, --data; karpathy: COCO 5k / Flickr30k 1k "
                        "from a Karpathy-split JSON, --karpathy and --images")
    p.add_argument("--data", help="finecap output URI to evaluate on (e.g. OUT/heldout)")
    p.add_argument("--karpathy", help="Karpathy-split JSON (dataset_coco.json, dataset_flickr30k.json)")
    p.add_argument("--images", help="folder the split's filepath/filename are relative to")
    p.add_argument("--split", help="which split of the JSON (default test)")
    p.add_argument("--max-captions", type=int, help="use each image's first N captions (default all)")
    p.set_defaults(func=_retrieval)


def _add_grounding(tasks) -> None:
    p = tasks.add_parser("grounding", help="a stage III checkpoint: region grounding")
    _common(p, batch_size=None)
    p.add_argument("--data", required=True, help="finecap output URI to evaluate on (e.g. OUT/heldout)")
    p.set_defaults(func=_grounding)


def _add_zeroshot(tasks) -> None:
    p = tasks.add_parser("zeroshot", help="a stage II checkpoint: zero-shot classification top-1/top-5 (CLIP protocol)")
    _common(p)
    p.add_argument("--classes", required=True, help="class names: one a line, or a JSON list (index order)")
    p.add_argument("--templates", help="prompt templates, one a line with {} (default: CLIP's 80 ImageNet prompts)")
    p.add_argument("--folder", help="ImageNet-style folder: one subfolder per class, sorted order = class index")
    p.add_argument("--labels", help="JSONL or CSV of image (path) and label (class index or name)")
    p.add_argument("--images", help="folder the --labels paths are relative to (default the labels file's)")
    p.set_defaults(func=_zeroshot)


def _add_longtext(tasks) -> None:
    p = tasks.add_parser("longtext", help="a stage II checkpoint: long-caption retrieval (DCI, Urban-1k, DOCCI)")
    _common(p, batch_size=32)
    p.add_argument("--pairs", required=True, help="JSONL of image (or image_file) and caption (or description)")
    p.add_argument("--images", required=True, help="folder the image paths are relative to")
    p.add_argument("--text-length", type=int, help="text tokens (default: the checkpoint's trained text length)")
    p.add_argument("--split", help="keep only lines whose split field equals this (e.g. DOCCI's test)")
    p.set_defaults(func=_longtext)


def _add_ablation(tasks) -> None:
    p = tasks.add_parser("ablation", help="the paper's stage ablation: each checkpoint's encoder on the local tasks "
                         "through one frozen-encoder stage III probe (and stage III as trained)")
    p.add_argument("--checkpoints", nargs="+", required=True, metavar="CKPT",
                   help="checkpoint dirs, stage dirs (their latest) or run outputs (each stage's latest)")
    p.add_argument("--data", required=True, help="held-out finecap output URI the local tasks are scored on")
    p.add_argument("--train-data", help="finecap output URI the probes train on (default: --data's sibling train)")
    p.add_argument("--probe-steps", type=int,
                   help="stage III steps of each probe (default: the latest checkpoint's own stage III steps)")
    p.add_argument("--limit", type=int, help="score only the first N held-out rows")
    p.add_argument("--work", help="folder for the probes' runs (default a temporary folder); removed unless kept")
    p.add_argument("--keep-probes", action="store_true", help="keep each probe's run under --work")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of every probe's config (run.threads=1, stage3.batch_size=8, ...)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line (default a table)")
    p.set_defaults(func=_ablation)


def register(subparsers) -> None:
    """Add `train` and `eval` to the `finecap` command."""
    train = subparsers.add_parser("train", help="train a FineViT stage on finecap shards")
    stage_command.add_arguments(train)
    ray_launch.add_arguments(train)
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser("eval", help="evaluate a FineViT checkpoint or a built dataset")
    tasks = evaluate.add_subparsers(dest="eval_task", required=True)
    for add in (_add_retrieval, _add_grounding, _add_zeroshot, _add_longtext, _add_ablation):
        add(tasks)
    from finecap.quality.cli import add_parser as add_dataset_eval

    add_dataset_eval(tasks)
