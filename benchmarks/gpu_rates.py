"""Measure two GPU rates the planner needs and write a rates file `finecap plan --rates` reads.

Why: every GPU figure in benchmarks/rates/example-gpu.yaml is assumed. This script, run on a
node with an NVIDIA GPU (CUDA PyTorch and transformers; no vLLM, Ray, polars or pyarrow needed),
measures on random weights (benchmarks/gpu_models.py):
  (a) Grounding DINO base-sized: images/s of the model's forward, one prompt per image, at
      batch sizes 1, 2, 4, ... in float16 and bfloat16 (the `detect` stage: the first dtype's
      best batch; the engine's PIL resize on the CPU is not in it);
  (b) the FineViT stage II training step (bf16 autocast on CUDA, AdamW, grad clipping) at micro-batch
      sizes up to the first that does not fit: samples/s and model FLOPs utilisation
      (gpu_models.step_flops / the device's dense bf16 peak, PEAK_TFLOPS or --peak-tflops).
The file labels which stages were measured (detect, training.stage2: device, command, date) and
copies every other stage from example-gpu.yaml, each noted `assumed`. A time guard keeps the run
under --budget-s (default 450 s): a batch size that would not finish in its section's time is
skipped, with the rest. `--device cpu --quick` runs tiny shapes end to end in seconds: a smoke
test that writes no GPU figure.

    python benchmarks/gpu_rates.py [--out benchmarks/rates/measured-<device>.yaml] [--peak-tflops X]
    python benchmarks/gpu_rates.py --device cpu --quick --out /tmp/smoke.yaml
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights only: nothing to fetch, ever
EXAMPLE = REPO / "benchmarks" / "rates" / "example-gpu.yaml"
MEASURED_STAGE = "detect"


class Budget:
    """Wall-clock guard: a measurement starts only if its estimate fits before its deadline."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.end = self.start + seconds

    def deadline(self, share: float) -> float:
        """`share` of the time left from now."""
        now = time.perf_counter()
        return now + share * max(0.0, self.end - now)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def timed(call, sync, min_seconds: float, max_calls: int, warmup: int) -> dict:
    """Warm up, then call until `min_seconds` pass (at least 2 calls, at most `max_calls`)."""
    started = time.perf_counter()
    for _ in range(warmup):
        call()
    sync()
    t0, calls = time.perf_counter(), 0
    while calls < max_calls and (calls < 2 or time.perf_counter() - t0 < min_seconds):
        call()
        sync()
        calls += 1
    now = time.perf_counter()
    return {"calls": calls, "seconds": round(now - t0, 4), "total_seconds": now - started}


def sweep(batches: list[int], measure, deadline: float, oom: type[BaseException]) -> dict:
    """measure(batch) for each batch size while the next one's estimate fits; stop at the first OOM."""
    rows, last = {}, None
    for batch in batches:
        if time.perf_counter() >= deadline:
            rows[batch] = {"skipped": "time budget (spent)"}
            break
        if last is not None:  # cost grows with the batch; warm-up and the timed calls scale alike
            estimate = last["total_seconds"] * batch / last["batch"] * 1.25
            if time.perf_counter() + estimate > deadline:
                rows[batch] = {"skipped": f"time budget (estimated {estimate:.0f} s)"}
                break
        try:
            row = measure(batch)
        except oom:
            rows[batch] = {"skipped": "out of memory"}
            break
        rows[batch] = row
        last = {**row, "batch": batch}
    return rows


def measure_detector(args, torch, device: str, deadline: float) -> dict:
    from benchmarks.gpu_models import detector_inputs, grounding_dino

    gen = torch.Generator().manual_seed(0)
    model = grounding_dino(args.quick).to(device)
    height, width = args.detect_size
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    found = {}
    for n, name in enumerate(args.dtypes):
        dtype = getattr(torch, name)
        model.to(dtype)
        share = time.perf_counter() + (deadline - time.perf_counter()) / (len(args.dtypes) - n)

        def measure(batch: int, dtype=dtype) -> dict:
            inputs = detector_inputs(model, batch, height, width, args.text_tokens, dtype, device, gen)
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            with torch.inference_mode():
                row = timed(lambda: model(**inputs), sync, args.min_seconds, args.max_calls, args.warmup)
            row["images_per_s"] = round(batch * row["calls"] / row["seconds"], 3)
            return row | _memory(torch, device)

        found[name] = sweep(args.detect_batches, measure, share, _oom(torch))
        _release(torch, device)
    return found  # the model goes with this frame: main releases its memory before stage II


def measure_stage2(args, torch, device: str, deadline: float) -> dict:
    from benchmarks.gpu_models import QUICK_STEP, StepModel, step_flops, step_inputs, step_shape

    shape = QUICK_STEP if args.quick else step_shape(args.train_config, args.phase)
    gen = torch.Generator().manual_seed(0)
    # Initialise on the device: Grounding DINO base (232M parameters) took 7.7 s on a loaded 2-core
    # CPU, so these 1.57B would take about a minute there.
    with torch.device(device):
        model = StepModel(shape)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=shape.lr, betas=shape.betas, weight_decay=shape.weight_decay)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    kind = "cuda" if device.startswith("cuda") else "cpu"

    def measure(batch: int) -> dict:
        inputs = step_inputs(shape, batch, device, gen)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(kind, dtype=torch.bfloat16, enabled=kind == "cuda"):
                loss = model(*inputs)
            loss.backward()
            if shape.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, shape.grad_clip)
            optimizer.step()

        if kind == "cuda":
            torch.cuda.reset_peak_memory_stats()
        try:
            row = timed(step, sync, args.min_seconds, args.max_calls, args.warmup)
        finally:
            optimizer.zero_grad(set_to_none=True)
        samples_per_s = batch * row["calls"] / row["seconds"]
        row.update(samples_per_s=round(samples_per_s, 3), flops_per_sample=step_flops(model, shape, batch),
                   model_tflops_per_s=round(samples_per_s * step_flops(model, shape, batch) / 1e12, 3))
        return row | _memory(torch, device)

    rows = sweep(args.train_batches, measure, deadline, _oom(torch))
    vision, text = sum(p.numel() for p in model.vision.parameters()), sum(p.numel() for p in model.text.parameters())
    return {"shape": {**shape.__dict__, "image_tokens": shape.image_tokens, "vision_parameters": vision,
                      "text_parameters": text}, "batches": rows}


def _release(torch, device: str) -> None:
    gc.collect()  # the closures of a finished sweep hold the model and the batch until collected
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _oom(torch) -> type[BaseException]:
    return getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _memory(torch, device: str) -> dict:
    if not device.startswith("cuda"):
        return {}
    return {"peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def best(rows: dict, key: str) -> tuple[int, dict] | None:
    done = [(batch, row) for batch, row in rows.items() if key in row]
    return max(done, key=lambda item: item[1][key]) if done else None


def rates_document(args, device_name: str, detect: dict, train: dict, peak: float | None, command: str) -> dict:
    """The rates file: measured detect and training.stage2, every other stage copied as assumed."""
    import yaml

    example = yaml.safe_load(EXAMPLE.read_text())
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    where = f"{device_name}, {date}, `{command}`"
    smoke = " SMOKE RUN (--quick, tiny shapes): not a GPU figure." if args.quick else ""
    cuda = args.device.startswith("cuda")
    stages = {}
    for name, stage in example["stages"].items():
        note = re.sub(r"^assumed:\s*", "", stage.get("note", ""))
        stages[name] = {**stage, "note": f"assumed (copied from benchmarks/rates/example-gpu.yaml): {note}"}
    first = args.dtypes[0]
    found = best(detect[first], "images_per_s")
    if found:
        batch, row = found
        stages[MEASURED_STAGE] = {
            **stages[MEASURED_STAGE], "items_per_s": row["images_per_s"], "gpus": 1,
            "note": f"measured{' (smoke)' if args.quick else ''}: Grounding DINO "
                    f"{'quick' if args.quick else 'base'}-shaped, random weights, {first}, batch {batch}, "
                    f"{args.detect_size[0]}x{args.detect_size[1]} px, one prompt of {args.text_tokens} tokens "
                    f"per image, forward only, one process alone on the {'GPU' if cuda else 'CPU'} ({where}); cpus assumed.{smoke}"}
    training = {}
    step = best(train["batches"], "samples_per_s")
    if step:
        batch, row = step
        mfu = row["model_tflops_per_s"] / peak if peak else None
        shape = train["shape"]
        training["stage2"] = {
            "samples_per_s": row["samples_per_s"], "gpus": 1, "mfu": round(mfu, 4) if mfu is not None else None,
            "note": f"measured{' (smoke)' if args.quick else ''}: FineViT {shape['vision']} + "
                    f"{shape['text_model']} text tower, random weights, {'bf16 autocast' if cuda else 'fp32'}, "
                    f"micro-batch {batch} at {shape['resolution']} px / {shape['text_length']} tokens, one "
                    f"{'GPU' if cuda else 'CPU process'}, text tower trained (its frozen steps cost less), no data "
                    f"loading; MFU "
                    f"= model FLOPs/s / {f'{peak:g} TFLOP/s dense bf16' if peak else 'unknown peak'} ({where}).{smoke}"}
    measured = [MEASURED_STAGE] * bool(found) + ["training.stage2"] * bool(step)
    what = ", ".join(measured) or "nothing"
    label = (f"SMOKE RUN on {device_name} with tiny shapes (--quick): NOT GPU figures; {what} timed on tiny "
             "models, every other stage ASSUMED (copied from example-gpu.yaml)" if args.quick else
             f"MEASURED {what} on {device_name} ({date}, benchmarks/gpu_rates.py); every other stage ASSUMED "
             "(copied from example-gpu.yaml)")
    return {"label": label, "measured": False, "node": example["node"], "stages": stages, "training": training}


def write_rates(path: Path, document: dict, figures: dict, command: str) -> None:
    import yaml

    header = ["Written by benchmarks/gpu_rates.py; `finecap plan --rates THIS --images N` reads it.",
              f"command: {command}", "",
              "measured: false because most stages are still assumed; each stage's note says which it is.",
              "OCR regions take their OCR text and cost no VLM request: `regions` counts detector regions",
              "(pass `finecap plan --selection OUT/balance` for a build's balanced selection).", "",
              "Figures (JSON):"] + json.dumps(figures, indent=1).splitlines()
    text = "".join(f"# {line}\n" if line else "#\n" for line in header)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + yaml.safe_dump(document, sort_keys=False, width=200))


def size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, got {text!r}")
    return int(match[1]), int(match[2])


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke test, no GPU figure")
    parser.add_argument("--out", type=Path, help="rates file (default benchmarks/rates/measured-<device>.yaml)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="wall-clock guard for the whole run")
    parser.add_argument("--detect-share", type=float, default=0.4, help="share of the budget for the detector")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="timed seconds per batch size, at least")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per batch size (cuDNN/cuBLAS picks)")
    parser.add_argument("--max-calls", type=int, default=30, help="timed calls per batch size, at most")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak (default: PEAK_TFLOPS)")
    parser.add_argument("--dtypes", nargs="+", default=["float16", "bfloat16"],
                        choices=["float16", "bfloat16", "float32"],
                        help="detector dtypes; the rates file takes the first (float16: cluster-gpu.yaml)")
    parser.add_argument("--detect-batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    # prepare bounds the long side to 768; grounding-dino-base's processor scales a 4:3 photo to 800x1066
    parser.add_argument("--detect-size", type=size, default=(800, 1066), help="HEIGHTxWIDTH model input")
    parser.add_argument("--text-tokens", type=int, default=64, help="prompt tokens per image")
    parser.add_argument("--train-config", type=Path, default=REPO / "pipelines" / "train-finevit.yaml")
    parser.add_argument("--phase", type=int, default=0, help="stage2 phase (0: 336 px, 64 tokens)")
    parser.add_argument("--train-batches", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    args = parser.parse_args(argv)
    if args.quick:
        args.detect_size, args.text_tokens, args.warmup, args.max_calls = (96, 128), 16, 1, 2
        args.detect_batches, args.train_batches = args.detect_batches[:2], args.train_batches[:2]
        if args.device == "cpu":  # half precision on this CPU: 0.1 s fp32 vs 0.6-2.4 s bf16 per tiny step
            args.dtypes = ["float32"]
    elif not args.device.startswith("cuda"):
        parser.error("--device: base-sized models need a CUDA device (cpu only with --quick)")
    if not 0 < args.budget_s <= 480:
        parser.error("--budget-s: must be in (0, 480]: the run is sized to finish within 8 minutes")
    if args.quick and args.out is None:
        parser.error("--out: required with --quick (a smoke file does not belong in benchmarks/rates)")
    return args


def main(argv: list[str] | None = None) -> int:
    budget = Budget(parse(argv).budget_s)  # from the start: importing torch and transformers counts
    args = parse(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device: CUDA is not available to this torch (pass --device cpu --quick for a smoke run)",
              file=sys.stderr)
        return 2
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    from benchmarks.gpu_models import peak_tflops

    peak = args.peak_tflops or peak_tflops(device_name)
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO), *(sys.argv[1:] if argv is None else argv)])
    detect = measure_detector(args, torch, args.device, budget.deadline(args.detect_share))
    _release(torch, args.device)
    train = measure_stage2(args, torch, args.device, budget.deadline(0.92))
    figures = {"device": device_name, "peak_tflops": peak, "torch": torch.__version__,
               "detect": detect, "stage2": train, "elapsed_s": round(budget.elapsed(), 1)}
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")
    out = args.out or REPO / "benchmarks" / "rates" / f"measured-{slug}.yaml"
    write_rates(out, rates_document(args, device_name, detect, train, peak, command), figures, command)
    from finecap.plan import load_rates, make_plan

    rates = load_rates(out)  # the file must give a plan, or it is no use to anyone
    plan = make_plan(rates, 1_000_000)
    print(json.dumps(figures, indent=1))
    print(f"wrote {out} in {budget.elapsed():.0f} s: {rates.label}; 1M images -> bottleneck {plan.bottleneck}, "
          f"{plan.wall_seconds / 3600:.1f} h on one node")
    return 0


if __name__ == "__main__":
    sys.exit(main())
