"""The `finecap` command: parses arguments and calls the library, nothing more.

Exit codes, the same for every command:
  0  success
  1  the command ran and its check failed (`validate` found problems)
  2  the command could not do what was asked: a config error, bad arguments, a refused output,
     missing input, a run that failed; one line on stderr (`error: ...`, `config error: ...`)

Implemented once (finecap/errors.py): handlers return 0 or 1; the library raises a `UserError`
for 2 and `main` prints it. Commands live beside the code they run where they can
(`add_parser(sub)`, as plan does).
"""

from __future__ import annotations

import argparse

from finecap import process
from finecap.errors import run_command


def _build(args: argparse.Namespace) -> int:
    from finecap.config import ConfigError, load_config
    from finecap.runtime.runner import run_build

    direct = {"source.uri": args.input, "output.uri": args.output, "source.limit": args.limit,
              "run.ray_address": args.ray_address}
    if args.from_output:
        if args.input:
            raise ConfigError("source.uri: give --input or --from, not both (--from OLD reads OLD's source)")
        direct.update({"source.kind": "finecap", "source.uri": args.from_output})
    config = load_config(args.config, args.set, **direct)
    summary = run_build(config, resume=args.resume)
    print(f"built {summary.output}: {summary.line()}")
    if summary.stage_seconds:
        print("stages (this run):")
        print("\n".join(summary.stage_lines()))
    if summary.rejects_by_reason:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(summary.rejects_by_reason.items()))
        print(f"rejects: {reasons}")
    if config.dedup.enabled:  # the dataset-level pass, once every shard is committed
        # The hash the build recorded: after --from it roots at OLD's source, not at this config's.
        return _run_dedup(config, planned=None, expected_hash=summary.config_hash)
    return 0


def _dedup(args: argparse.Namespace) -> int:
    from finecap.config import load_config
    from finecap.sources import make_source, resolve_source

    config = load_config(
        args.config,
        args.set,
        **{"source.uri": args.input, "output.uri": args.output, "source.limit": args.limit,
           "run.ray_address": args.ray_address},
    )
    resolve_source(config)  # the kind the build resolved to, so the config hash matches its shards
    return _run_dedup(config, planned=[spec.shard_id for spec in make_source(config).plan()])


def _run_dedup(config, planned: list[str] | None, expected_hash: str | None = None) -> int:
    from finecap.dedup import run_dedup
    from finecap.stages.fingerprints import config_hash

    print(run_dedup(config, planned, expected_hash or config_hash(config)).line())
    return 0


def _validate(args: argparse.Namespace) -> int:
    from finecap.validate import format_report, report_json, validate_output

    report = validate_output(args.output)
    print(report_json(report) if args.json else format_report(report, args.output))
    return 0 if report.ok else 1


def _report(args: argparse.Namespace) -> int:
    from finecap.report.build import write_report
    from finecap.report.gallery import GalleryOptions

    options = GalleryOptions(size=args.gallery_size, per_page=args.per_page, sort_by=args.sort_by)
    result = write_report(args.output, options)
    print("\n".join(result.lines()))
    return 0


def _balance(args: argparse.Namespace) -> int:
    from finecap.balance import balance

    summary = balance(args.output, args.cap, args.seed, args.origin, args.out, args.keep_below)
    print(f"balanced {summary.output}: {summary.line()}")
    return 0


def _build_tiny(args: argparse.Namespace) -> int:
    from finecap.models.registry import build_all_tiny

    for name, path in build_all_tiny(args.dir).items():
        print(f"{name}: {path}")
    return 0


def _sample_source(args: argparse.Namespace) -> int:
    from finecap.samples.source import write_sample_source

    path = write_sample_source(args.dir, n_scenes=args.n, seed=args.seed)
    print(f"sample source written to {path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from finecap.engines.vllm_server import serve

    vllm_args = args.vllm_args[1:] if args.vllm_args[:1] == ["--"] else args.vllm_args
    return serve(args.model, vllm_args)


def make_parser() -> argparse.ArgumentParser:
    what, exit_codes = (__doc__ or "\n\n").split("\n\n")[:2]  # None under python -OO
    parser = argparse.ArgumentParser(prog="finecap", description=what, epilog=exit_codes,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="run a pipeline into an output dataset")
    build.add_argument("--config", required=True, help="pipeline YAML, e.g. pipelines/local.yaml")
    build.add_argument("--input", help="source URI (overrides source.uri)")
    build.add_argument("--from", dest="from_output", metavar="OLD",
                       help="build from an earlier FineCap output: recompute only the stages whose settings "
                            "changed, read the rest from OLD (left untouched); needs --output")
    build.add_argument("--output", help="output URI (overrides output.uri)")
    build.add_argument("--limit", type=int, help="use only the first N input rows")
    build.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    build.add_argument("--ray-address", help="join this Ray cluster instead of starting a local one")
    build.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                       help="skip committed shards and rebuild only the stages a changed config touches "
                            "(default); --no-resume deletes the output and starts over")
    build.set_defaults(func=_build)

    dedup = sub.add_parser("dedup", help="remove duplicates across a built output (build runs it when "
                           "dedup.enabled); give the build's --config, --input, --limit and --set")
    dedup.add_argument("output", help="the output URI the build wrote")
    dedup.add_argument("--config", required=True, help="the pipeline YAML the output was built with")
    dedup.add_argument("--input", help="source URI the build used (overrides source.uri)")
    dedup.add_argument("--limit", type=int, help="the build's --limit")
    dedup.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="the build's overrides")
    dedup.add_argument("--ray-address", help="run the pass on this Ray cluster")
    dedup.set_defaults(func=_dedup)

    validate = sub.add_parser("validate", help="check schema, accounting, keys and provenance")
    validate.add_argument("output")
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.set_defaults(func=_validate)

    report = sub.add_parser("report", help="statistics, plots, quality page, dataset card (OUTPUT/README.md) and gallery")
    report.add_argument("output")
    report.add_argument("--gallery-size", type=int, default=96, help="sample images in the gallery (default 96)")
    report.add_argument("--per-page", type=int, default=24, help="images per gallery page (default 24)")
    report.add_argument("--sort-by", metavar="SIGNAL", help="show the output's rows lowest on a row quality signal "
                        "(e.g. grounding_rate) instead of an even sample, lowest first; --sort-by=-SIGNAL: highest "
                        "first (repetition, ocr_ignored)")
    report.set_defaults(func=_report)

    bal = sub.add_parser("balance", help="class-balanced selection of regions (caps frequent categories)")
    bal.add_argument("output", help="a finecap output (URI)")
    bal.add_argument("--cap", type=int, default=100_000, help="most instances kept per category (default 100000)")
    bal.add_argument("--seed", type=int, default=0, help="which instances a capped category keeps")
    bal.add_argument("--keep-below", type=int, default=0,
                     help="categories with fewer instances are kept whole, even above the cap (default 0)")
    bal.add_argument("--origin", action="append", choices=["detector", "ocr"],
                     help="balance regions of this origin (repeatable; default detector: OCR regions, "
                          "captioned with their own text, are all kept)")
    bal.add_argument("--out", help="where to write the selection (default OUTPUT/balance)")
    bal.set_defaults(func=_balance)

    serve = sub.add_parser("serve", help="serve a model with vLLM's OpenAI-compatible server")
    serve.add_argument("model", help="hub name, local path or tiny:NAME")
    serve.add_argument("vllm_args", nargs=argparse.REMAINDER, help="passed to `vllm serve` (after --)")
    serve.set_defaults(func=_serve)

    models = sub.add_parser("models", help="local models").add_subparsers(dest="models_command", required=True)
    tiny = models.add_parser("build-tiny", help="build the tiny random-weight models of the embedded default")
    tiny.add_argument("dir")
    tiny.set_defaults(func=_build_tiny)

    samples = sub.add_parser("samples", help="sample data").add_subparsers(dest="samples_command", required=True)
    source = samples.add_parser("build-source", help="write the bundled offline sample image folder")
    source.add_argument("dir")
    source.add_argument("--n", type=int, default=24, help="number of generated scenes")
    source.add_argument("--seed", type=int, default=0)
    source.set_defaults(func=_sample_source)
    from finecap.data_engine.cli import add_parser as add_data_engine_parser
    from finecap.diff import add_parser as add_diff_parser
    from finecap.export_command import add_parser as add_export_parser
    from finecap.lineage import add_parser as add_log_parser
    from finecap.plan import add_parser as add_plan_parser
    from finecap.samples.synth_dataset import register_synth
    from finecap.train.commands import register as register_train

    add_log_parser(sub)
    add_diff_parser(sub)
    add_plan_parser(sub)
    register_synth(samples)
    register_train(sub)
    add_export_parser(sub)
    add_data_engine_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    process.start(args.verbose)
    return run_command(args.func, args)


def entry_point() -> None:
    """The console script (ends the process the hard way: see `process.exit_with`)."""
    process.exit_with(main)


if __name__ == "__main__":
    entry_point()
