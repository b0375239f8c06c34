"""`finecap diff A B`: two FineCap outputs side by side.

Compares rows and rejects by key (which keys changed fate and why), global captions per
captioner, regions per origin and category (matched by box in rows both kept), the stages'
fingerprints and versions the manifests record, and the numeric metrics both outputs' report
files carry. Prints a human-readable report, or with --json only one JSON object (one line).
Exits 0 whenever the comparison ran, differences or not; 2 when an output has no committed
shard.
"""

from __future__ import annotations

from finecap.diff.compare import DEFAULT_EXAMPLES, DiffError, diff_outputs

__all__ = ["DiffError", "add_parser", "diff_outputs", "run_diff_command"]


def add_parser(sub) -> None:
    """Register `finecap diff` on the CLI's subcommands."""
    diff = sub.add_parser("diff", help="compare two outputs: rows, rejects, captions, regions, fingerprints, metrics")
    diff.add_argument("a", help="the first output (any fsspec URI), e.g. a version")
    diff.add_argument("b", help="the second output, e.g. its rebuild")
    diff.add_argument("--json", action="store_true", help="print only one JSON object")
    diff.add_argument("--examples", type=_examples, default=DEFAULT_EXAMPLES, metavar="N",
                      help=f"example keys shown per count (default {DEFAULT_EXAMPLES})")
    diff.set_defaults(func=run_diff_command)


def _examples(value: str) -> int:
    import argparse

    n = int(value) if value.isdigit() else -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"--examples: expected a whole number >= 0, got {value!r}")
    return n


def run_diff_command(args) -> int:
    import json

    from finecap.diff.format import format_diff

    diff = diff_outputs(args.a, args.b, args.examples)  # a DiffError is exit 2 (finecap/errors.py)
    print(json.dumps(diff, sort_keys=False) if args.json else "\n".join(format_diff(diff)))
    return 0
