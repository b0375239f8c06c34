"""`finecap train STAGE` in this process: its arguments and the run.

Two callers: `finecap train` (train/commands.py, without Ray flags), and each trainer torchrun
starts for `finecap train --ray-address` (`trainer_main`, from train/ray_launch.py). The trainer
does not go through the CLI: the CLI registers the launcher, so importing it from there would
be an import cycle. torch loads inside `run`, not at import.
"""

from __future__ import annotations

import argparse
import os

from finecap import process
from finecap.errors import run_command

STAGE_CHOICES = ("stage1", "stage2", "stage3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """What one stage's run takes (launch flags are added by train/ray_launch.py)."""
    parser.add_argument("stage", choices=STAGE_CHOICES, help="stage1 (MIM), stage2 (SigLIP), stage3 (LLM alignment)")
    parser.add_argument("--config", required=True, help="training YAML, e.g. pipelines/train-tiny.yaml")
    parser.add_argument("--data", help="finecap output URI to train on (overrides data.uri)")
    parser.add_argument("--output", help="run directory; the stage writes OUTPUT/STAGE (overrides run.output)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")


def run(args: argparse.Namespace) -> int:
    """Train one stage here; under torchrun only rank 0 prints the summary line."""
    from finecap.train.config import load_train_config
    from finecap.train.loop import run_stage

    config = load_train_config(args.config, args.set, **{"data.uri": args.data, "run.output": args.output})
    summary = run_stage(config, args.stage)
    if os.environ.get("RANK", "0") == "0":
        print(f"{summary.stage}: step {summary.step}, loss {summary.loss:.4f}, checkpoint {summary.checkpoint}")
    return 0


def trainer_main(argv: list[str]) -> int:
    """One trainer under torchrun: `[--verbose] train STAGE ...`, as `ray_launch.node_argv` writes
    it, with the same process set-up and exit codes as `finecap`."""
    parser = argparse.ArgumentParser(prog="finecap")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_arguments(parser.add_subparsers(dest="command", required=True).add_parser("train"))
    args = parser.parse_args(argv)
    process.start(args.verbose)
    return run_command(run, args)
