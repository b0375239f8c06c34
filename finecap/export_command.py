"""`finecap export vllm CHECKPOINT OUT`: argument parsing only.

Lives outside finecap/export/ because importing that package registers the model with
transformers (torch and transformers load, seconds on this machine) and every `finecap` command
builds this parser; the handler imports it only when an export runs.
"""

from __future__ import annotations

import argparse


def _export(args: argparse.Namespace) -> int:
    from transformers.utils.logging import disable_progress_bar

    from finecap.export.export import export_checkpoint

    disable_progress_bar()  # loading and writing bars of a tiny model are noise around the one line printed
    print(export_checkpoint(args.checkpoint, args.out))
    return 0


def add_parser(subparsers) -> None:
    """Add `export` to the `finecap` command."""
    export = subparsers.add_parser("export", help="export a trained model")
    targets = export.add_subparsers(dest="export_target", required=True)
    vllm = targets.add_parser("vllm", help="a stage III checkpoint as a FineViT-VL model folder for vLLM and "
                              "transformers (config, safetensors, tokenizer, processor settings)")
    vllm.add_argument("checkpoint", help="stage III checkpoint dir, stage dir or run output")
    vllm.add_argument("out", help="model folder to write (replaced if it is an earlier export)")
    vllm.set_defaults(func=_export)
