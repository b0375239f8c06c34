"""`finecap eval dataset`: argument parsing only; the work is in evaluate.py."""

from __future__ import annotations

import argparse
import json

RESULT_FILE = "eval_dataset.json"  # under OUT/report/, where `finecap diff` compares report metrics


def add_parser(tasks) -> None:
    """Register `dataset` on `finecap eval`'s tasks."""
    dataset = tasks.add_parser("dataset", help="score a built dataset: its quality signals, and against "
                               "COCO-format ground truth with --truth")
    dataset.add_argument("output", help="the FineCap output to score (any fsspec URI)")
    dataset.add_argument("--truth", help="COCO-format JSON: instances, captions and COCO-Text text annotations "
                         "(`finecap samples` writes truth.coco.json); without it, only the signals")
    dataset.add_argument("--against", metavar="B", help="also score output B and show every metric side by side")
    dataset.add_argument("--vocabulary", help='JSON {"synonyms": {"category": ["other name", ...]}} that '
                         "also count as mentions of a truth category")
    dataset.add_argument("--limit", type=int, help="score only the first N rows against the truth (the signals "
                         "summarise every row)")
    dataset.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                         help=f"with --truth, write the result to OUTPUT/report/{RESULT_FILE}, where the report "
                              "shows it and `finecap diff` compares it (default); --no-save for a read-only output")
    dataset.add_argument("--json", action="store_true", help="print only the JSON object")
    dataset.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from finecap import storage
    from finecap.quality.compare import compare_results
    from finecap.quality.evaluate import evaluate_dataset
    from finecap.quality.format import format_comparison, format_eval

    own = evaluate_dataset(args.output, args.truth, args.vocabulary, args.limit)
    lines, result = format_eval(own), own
    if args.against:
        baseline = evaluate_dataset(args.against, args.truth, args.vocabulary, args.limit)
        rows = compare_results(own, baseline)
        lines += format_comparison(rows, args.output, args.against)
        result = {**own, "against": baseline, "changes": rows}
    if args.save and args.truth:  # signals alone are the report's quality.json: never replace a truth score
        saved = storage.join(args.output, "report", RESULT_FILE)
        # This output's own truth metrics: its signals and duplicate captions are the report's
        # quality.json already, and `finecap diff` would list each of them twice.
        scored = {k: v for k, v in own.items() if k not in ("signals", "duplicate_captions")}
        storage.write_bytes(saved, json.dumps(scored, indent=1).encode("utf-8"))
        lines.append(f"saved {saved}")
    if not args.json:
        print("\n".join(lines))
    print(json.dumps(result))  # the last line: one JSON object
    return 0
