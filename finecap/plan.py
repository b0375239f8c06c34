"""`finecap plan`: wall time, GPU-hours and the bottleneck stage of a build, from per-stage rates.

Why a model this simple: a build is a streaming pipeline (every stage runs at once, batches flow
through), so in steady state it moves at the pace its resources allow, and the useful questions
are how long, how many GPU-hours, and which stage to speed up. The model (docs/plan.md):

- each stage has a rate per worker (items/s) and what one worker holds (GPUs, CPUs); a fraction
  of the input reaches it (rejects) and each image gives it `items_per_image` items (regions);
- resource-seconds per input image of a stage = fraction x items_per_image x held / rate;
- resources are split between stages in proportion to those costs, so all stages balance and the
  pipeline moves T = min(GPUs / sum of GPU-s per image, CPUs / sum of CPU-s per image) images/s;
- the bottleneck is the stage that uses most of the binding resource; stages marked
  `after_build` (dedup) run after the stream on the whole cluster and add their time.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from finecap.errors import UserError
from finecap.typed_config import ConfigError, build

# The recorded benchmark results ship inside the package, so an installed `finecap plan` has its defaults.
RESULTS_DIR = files("finecap") / "benchmark_results"


@dataclass
class StageRate:
    """One stage's measured (or assumed) speed and what each of its workers holds."""

    items_per_s: float  # per worker, while busy
    gpus: float = field(default=0.0, metadata={"min": 0})
    cpus: float = field(default=0.0, metadata={"min": 0})
    fraction: float = field(default=1.0, metadata={"min": 0, "max": 1})  # of input images reaching it
    items_per_image: float = field(default=1.0, metadata={"min": 0})  # e.g. regions per image
    after_build: bool = False  # a dataset-level pass run after the stream (dedup)
    note: str = ""


@dataclass
class NodeShape:
    gpus: int = field(default=0, metadata={"min": 0})
    cpus: int = field(default=1, metadata={"min": 1})


@dataclass
class TrainingRate:
    """A trainer step's measured speed (benchmarks/gpu_rates.py): shown beside the plan, not part of a build."""

    samples_per_s: float  # on `gpus` GPUs together
    gpus: float = field(default=1.0, metadata={"min": 0})
    mfu: float | None = field(default=None, metadata={"min": 0, "max": 1})  # model FLOPs utilisation
    note: str = ""


@dataclass
class Rates:
    label: str  # what the figures are: measured where, or assumed
    stages: dict[str, StageRate]
    measured: bool = False
    node: NodeShape = field(default_factory=NodeShape)
    training: dict[str, TrainingRate] = field(default_factory=dict)


def check_rates(rates: Rates) -> Rates:
    """Checks that need more than one field; errors name the key, like every config error."""
    if all(stage.after_build for stage in rates.stages.values()):
        raise ConfigError("stages: at least one stage must be part of the build (after_build: false)")
    for name, stage in rates.stages.items():
        if not stage.items_per_s > 0:
            raise ConfigError(f"stages.{name}.items_per_s: must be > 0 (got {stage.items_per_s!r})")
        if stage.gpus == 0 and stage.cpus == 0:
            raise ConfigError(f"stages.{name}: a worker must hold gpus or cpus (both are 0)")
    for name, train in rates.training.items():
        if not train.samples_per_s > 0:
            raise ConfigError(f"training.{name}.samples_per_s: must be > 0 (got {train.samples_per_s!r})")
        if not train.gpus > 0:
            raise ConfigError(f"training.{name}.gpus: must be > 0 (got {train.gpus!r})")
    return rates


def load_rates(path: str | Path) -> Rates:
    """Read a rates file (YAML or JSON) strictly: unknown keys and wrong types stop here."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"rates file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML or JSON: {str(exc).splitlines()[0]}") from None
    return check_rates(build(Rates, raw))


def _worker(rate: float, note: str, cpus: float = 1.0, **extra) -> dict:
    return {"items_per_s": rate, "cpus": cpus, "note": note, **extra}


def _stage_rates(figures: dict, machine: dict) -> dict:
    return {name: _worker(s["images_per_s"], f"busy time of {name} in a local build")
            for name, s in figures["stages"].items()}


def _caption(figures: dict, machine: dict) -> dict:
    # One engine per actor, holding as many cores as it ran torch threads (older results: all).
    rate = figures["caption_stage"]["images_per_s"]
    threads = figures.get("engine_alone", {}).get("torch_threads") or machine.get("cpus") or 1
    return {"caption": _worker(rate, "caption stage in a build, tiny VLM", cpus=threads)}


# Benchmark result (finecap/benchmark_results/NAME.json) -> the stage rates it measured. Later entries
# override earlier ones for the same stage; add a line here when a benchmark measures a stage.
MEASURED = {
    "stage_rates": _stage_rates,
    "fetch_rate": lambda f, m: {"fetch": _worker(f["images_per_second"], "one fetch task, loopback")},
    "caption_stage": _caption,
    "sink_write": lambda f, m: {"write": _worker(f["sink"]["rows_per_s"], "stage + commit, one process")},
    "dedup_scale": lambda f, m: {"dedup": _worker(f["rows_per_second"], "one reduce task", after_build=True)},
}


PIPELINE_ORDER = ("fetch", "read", "prepare", "filter", "caption", "phrases", "detect", "ocr", "regions",
                  "write", "dedup")


def measured_rates(results_dir: Traversable = RESULTS_DIR) -> Rates:
    """Default rates: this CPU machine's recorded benchmark results (tiny models)."""
    stages: dict = {}
    cpus = 1
    for name, extract in MEASURED.items():
        path = results_dir / f"{name}.json"
        if path.is_file():
            result = json.loads(path.read_text())
            machine = result.get("machine", {})
            stages.update(extract(result["figures"], machine))
            cpus = max(cpus, int(machine.get("cpus") or 1))
    if not stages:
        raise ConfigError(f"no benchmark results under {results_dir}: pass --rates FILE "
                          "(example: benchmarks/rates/example-gpu.yaml)")
    order = {name: i for i, name in enumerate(PIPELINE_ORDER)}
    stages = dict(sorted(stages.items(), key=lambda kv: order.get(kv[0], len(order))))
    label = ("MEASURED on this CPU machine with its tiny models (finecap/benchmark_results/*.json): a sanity "
             "check of the pipeline, not a GPU forecast (pass --rates with your own figures for that)")
    return check_rates(build(Rates, {"label": label, "measured": True, "stages": stages,
                                     "node": {"gpus": 0, "cpus": cpus}}))


@dataclass
class StagePlan:
    name: str
    after_build: bool
    gpu_s_per_image: float  # resource-seconds per input image
    cpu_s_per_image: float
    workers: float  # busy workers needed at the pipeline's pace
    images_per_s: float  # this stage's pace with its share of the resources
    gpu_hours: float  # busy resource-hours for the whole input
    cpu_core_hours: float
    bottleneck: bool = False


@dataclass
class Plan:
    images: int
    nodes: int
    gpus_per_node: int
    cpus_per_node: int
    label: str
    measured: bool
    images_per_s: float  # the stream's pace
    binding: str  # "gpus" or "cpus": the resource that sets the pace
    bottleneck: str
    stream_seconds: float
    after_seconds: float
    wall_seconds: float
    gpu_hours: float  # what the cluster's GPUs are held for (nodes x GPUs x wall)
    gpu_hours_busy: float
    cpu_core_hours: float
    cpu_core_hours_busy: float
    stages: list[StagePlan]
    # Detector regions per image the regions stage captions with the VLM (OCR regions take their
    # OCR text): None without a regions stage; where it came from (the rates file or a flag).
    regions_per_image: float | None = None
    regions_from: str = "rates file"
    training: dict[str, dict] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        for stage in data["stages"]:  # a stage with no work has no finite pace
            stage["images_per_s"] = None if math.isinf(stage["images_per_s"]) else stage["images_per_s"]
        return json.dumps(data)


class PlanError(UserError, ValueError):
    """The rates cannot run on the cluster described (a GPU stage and no GPUs)."""


def make_plan(rates: Rates, images: int, nodes: int = 1, gpus_per_node: int | None = None,
              cpus_per_node: int | None = None) -> Plan:
    gpus_node = rates.node.gpus if gpus_per_node is None else gpus_per_node
    cpus_node = rates.node.cpus if cpus_per_node is None else cpus_per_node
    if images < 1 or nodes < 1 or gpus_node < 0 or cpus_node < 1:
        raise PlanError("need --images >= 1, --nodes >= 1, --gpus-per-node >= 0, --cpus-per-node >= 1")
    total_gpus, total_cpus = nodes * gpus_node, nodes * cpus_node
    cost = {}
    for name, s in rates.stages.items():
        items = s.fraction * s.items_per_image
        cost[name] = (items * s.gpus / s.items_per_s, items * s.cpus / s.items_per_s)
        if s.gpus and not total_gpus:
            raise PlanError(f"stage {name!r} holds {s.gpus:g} GPU per worker but the cluster has no "
                            "GPUs: pass --gpus-per-node")
    stream = [n for n, s in rates.stages.items() if not s.after_build]
    sum_gpu = sum(cost[n][0] for n in stream)
    sum_cpu = sum(cost[n][1] for n in stream)
    pace_gpu = total_gpus / sum_gpu if sum_gpu else math.inf
    pace_cpu = total_cpus / sum_cpu if sum_cpu else math.inf
    pace = min(pace_gpu, pace_cpu)
    if math.isinf(pace):
        raise PlanError("no stage of the build does any work (every fraction or items_per_image is 0)")
    binding = "gpus" if pace_gpu <= pace_cpu else "cpus"
    index = 0 if binding == "gpus" else 1
    bottleneck = max(stream, key=lambda n: cost[n][index])
    plans, after = [], 0.0
    for name, s in rates.stages.items():
        g, c = cost[name]
        if s.after_build:  # alone on the whole cluster
            own = min(total_gpus / g if g else math.inf, total_cpus / c if c else math.inf)
            after += 0.0 if math.isinf(own) else images / own
        else:  # its proportional share of each resource it uses
            own = min(pace_gpu if g else math.inf, pace_cpu if c else math.inf)
        busy_pace = pace if not s.after_build else own
        plans.append(StagePlan(
            name=name, after_build=s.after_build, gpu_s_per_image=g, cpu_s_per_image=c,
            workers=busy_pace * s.fraction * s.items_per_image / s.items_per_s,
            images_per_s=own, gpu_hours=images * g / 3600, cpu_core_hours=images * c / 3600,
            bottleneck=name == bottleneck,
        ))
    stream_seconds = images / pace
    wall = stream_seconds + after
    regions = rates.stages.get("regions")
    return Plan(
        images=images, nodes=nodes, gpus_per_node=gpus_node, cpus_per_node=cpus_node,
        label=rates.label, measured=rates.measured, images_per_s=pace,
        binding=binding, bottleneck=bottleneck, stream_seconds=stream_seconds, after_seconds=after,
        wall_seconds=wall, gpu_hours=total_gpus * wall / 3600,
        gpu_hours_busy=sum(p.gpu_hours for p in plans), cpu_core_hours=total_cpus * wall / 3600,
        cpu_core_hours_busy=sum(p.cpu_core_hours for p in plans), stages=plans,
        regions_per_image=regions.items_per_image if regions else None,
        training={name: {**asdict(t), "gpu_hours_per_million_samples": 1e6 * t.gpus / t.samples_per_s / 3600}
                  for name, t in rates.training.items()},
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_plan(plan: Plan, rates: Rates) -> list[str]:
    lines = [
        f"plan: {plan.images:,} images on {plan.nodes} node(s) x {plan.gpus_per_node} GPUs, "
        f"{plan.cpus_per_node} CPUs each",
        f"rates: {plan.label}",
    ]
    if not plan.measured:
        lines.append("warning: these rates are not measurements; replace them with your own (docs/plan.md)")
    if plan.regions_per_image is not None:
        lines.append(f"regions: {plan.regions_per_image:.3g} detector regions per image get a VLM caption "
                     f"(from {plan.regions_from}); OCR regions take their OCR text, no VLM request")
    binding = "gpu_s_per_image" if plan.binding == "gpus" else "cpu_s_per_image"
    total = sum(getattr(s, binding) for s in plan.stages if not s.after_build) or 1.0
    lines += ["", f"{'stage':<10} {'img/s/worker':>12} {'holds':>14} {'GPU-s/img':>10} {'CPU-s/img':>10} "
              f"{'workers':>8} {plan.binding + ' %':>7} {'GPU-h':>9} {'CPU-core-h':>11}"]
    for s in plan.stages:
        r = rates.stages[s.name]
        holds = f"{r.gpus:g} GPU {r.cpus:g} CPU" if r.gpus else f"{r.cpus:g} CPU"
        share = "after" if s.after_build else f"{100 * getattr(s, binding) / total:.1f}"
        mark = "  <- bottleneck" if s.bottleneck else ""
        lines.append(f"{s.name:<10} {r.items_per_s / (r.items_per_image or 1):>12,.2f} {holds:>14} "
                     f"{s.gpu_s_per_image:>10.4f} {s.cpu_s_per_image:>10.4f} {s.workers:>8.2f} {share:>7} "
                     f"{s.gpu_hours:>9.2f} {s.cpu_core_hours:>11.2f}{mark}")
    lines += [
        "",
        f"pace: {plan.images_per_s:,.2f} input images/s, set by the {plan.binding}: resources split in "
        "proportion to each stage's resource-seconds per image, so the stages balance",
        f"bottleneck: {plan.bottleneck} (uses the largest share of the {plan.binding}: speed it up first)",
        f"wall time: {_duration(plan.wall_seconds)} (stream {_duration(plan.stream_seconds)}"
        f" + after-build passes {_duration(plan.after_seconds)})",
        f"GPU-hours: {plan.gpu_hours:,.1f} held by the cluster, {plan.gpu_hours_busy:,.1f} busy",
        f"CPU-core-hours: {plan.cpu_core_hours:,.1f} held by the cluster, {plan.cpu_core_hours_busy:,.1f} busy",
        "(steady state: model loading, the pipeline's fill and drain and whole-worker rounding are not counted)",
    ]
    if plan.training:
        lines += ["", "training (from the rates file; not part of the build):"]
        for name, t in plan.training.items():
            mfu = f", MFU {100 * t['mfu']:.1f}%" if t["mfu"] is not None else ""
            lines.append(f"  {name}: {t['samples_per_s']:,.1f} samples/s on {t['gpus']:g} GPU{mfu}; "
                         f"{t['gpu_hours_per_million_samples']:,.2f} GPU-hours per million samples"
                         + (f" ({t['note']})" if t["note"] else ""))
    return lines


def add_parser(sub) -> None:
    """Register `finecap plan` on the CLI's subcommands."""
    plan = sub.add_parser("plan", help="wall time, GPU-hours and the bottleneck stage from per-stage rates")
    plan.add_argument("--images", type=int, required=True, help="input images (N)")
    plan.add_argument("--rates", help="rates file (YAML/JSON; default: this machine's benchmark results; "
                      "example: benchmarks/rates/example-gpu.yaml)")
    plan.add_argument("--nodes", type=int, default=1, help="nodes (K, default 1)")
    plan.add_argument("--gpus-per-node", type=int, help="GPUs per node (G; default from the rates file)")
    plan.add_argument("--cpus-per-node", type=int, help="CPUs per node (default from the rates file)")
    plan.add_argument("--selection", help="a balanced selection (OUT/balance, written by `finecap balance OUT`): "
                      "the regions stage captions its selected detector regions per image")
    plan.add_argument("--regions-per-image", type=float, help="detector regions per image the regions stage "
                      "captions (replaces the rates file's regions items_per_image)")
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.set_defaults(func=run_plan_command)


def run_plan_command(args) -> int:
    from finecap.plan_inputs import PlanInputError, apply_regions, regions_override

    override = regions_override(args.selection, args.regions_per_image)
    flag = "--selection" if args.selection is not None else "--regions-per-image"
    if override is not None and not args.rates:
        # stage_rates measures the regions stage per input image (its regions inside): no per-region rate.
        raise PlanInputError(f"{flag}: needs --rates FILE whose regions items_per_s is regions/s (the default "
                             "rates measure the regions stage per image)")
    rates = apply_regions(load_rates(args.rates) if args.rates else measured_rates(), override, flag)
    plan = make_plan(rates, args.images, args.nodes, args.gpus_per_node, args.cpus_per_node)
    if not args.rates:
        plan.regions_per_image = None
    elif override is not None:
        plan.regions_from = override.source
    print(plan.to_json() if args.json else "\n".join(format_plan(plan, rates)))
    return 0
