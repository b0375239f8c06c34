"""The training loop every stage shares: AdamW, warmup + cosine, accumulation, autocast, DDP/FSDP,
checkpoints with the data position, resume, progress and a CSV log.

A run of stage N writes OUTPUT/stageN/{checkpoints/, log.csv, trace/}; by default it starts
from stage N-1's last checkpoint and, if stage N already has checkpoints, resumes from the last.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from finecap import __version__
from finecap.train import distributed as D
from finecap.train.batches import BatchStream, Budget, make_loader
from finecap.train.checkpoint import latest_checkpoint, load_trainer_state, read_state, save_checkpoint
from finecap.train.config import STAGES, TrainConfig, phase_at, require_paths
from finecap.train.freeze import group_factors, hold_frozen
from finecap.train.logs import CsvLog, Trace, warmup_cosine
from finecap.train.recipe import Recipe, StepContext
from finecap.train.shards import Position, plan_units
from finecap.typed_config import ConfigError, to_dict

log = logging.getLogger(__name__)
# Testing hook: SIGKILL this process right after this step completes (a crash at a known point).
KILL_ENV = "FINECAP_TRAIN_KILL_AT_STEP"


@dataclass
class RunSummary:
    stage: str
    step: int
    loss: float
    checkpoint: str
    resumed_from: int | None


def recipe_class(name: str) -> type[Recipe]:
    """Imported on demand: stage I needs no transformers import."""
    import importlib

    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
    module = importlib.import_module(f"finecap.train.{name}")
    return getattr(module, name.capitalize())


def resolve_init(config: TrainConfig, name: str) -> Path | None:
    """The checkpoint stage `name` starts from (when not resuming)."""
    init_from = config.stage(name).init_from
    if init_from is None or (init_from == "previous" and name == STAGES[0]):
        return None
    if init_from == "previous":
        previous = STAGES[STAGES.index(name) - 1]
        found = latest_checkpoint(config.stage_dir(previous))
        if found is None:
            raise ConfigError(f"{name}.init_from: 'previous' but {config.stage_dir(previous)} has no checkpoint; "
                              f"train {previous} first, or set {name}.init_from to a checkpoint or null")
        return found
    path = Path(init_from)
    found = path if (path / "state.json").exists() else latest_checkpoint(path)
    if found is None:
        raise ConfigError(f"{name}.init_from: no checkpoint at {init_from}")
    return found


def autocast(precision: str, device: torch.device):
    """bf16 autocast on GPUs that have it (precision auto/bf16), on CPU only when asked (bf16)."""
    if precision == "fp32":
        return nullcontext()
    if device.type == "cuda" and (precision == "bf16" or torch.cuda.is_bf16_supported()):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def run_stage(config: TrainConfig, name: str) -> RunSummary:
    """Train stage `name` (stage1 | stage2 | stage3) to its configured step count."""
    require_paths(config)
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    d = D.setup(config.run.device)
    try:
        return _run(config, name, d)
    finally:
        D.teardown()


def _run(config: TrainConfig, name: str, d: D.Dist) -> RunSummary:
    stage = config.stage(name)
    stage_dir = config.stage_dir(name)
    resume = latest_checkpoint(stage_dir) if config.run.resume else None
    if not config.run.resume and d.is_main:
        for stale in (stage_dir / "checkpoints", stage_dir / "trace", stage_dir / "log.csv"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    D.barrier(d)
    init = None if resume else resolve_init(config, name)
    torch.manual_seed(config.run.seed)
    recipe = recipe_class(name)(config, init=init, resume=resume, device=d.device)
    model = D.wrap(recipe.model.to(d.device), d, config.run.strategy)
    opt = stage.optim
    optimizer = torch.optim.AdamW(recipe.param_groups(D.unwrap(model), opt.weight_decay), lr=opt.lr,
                                  betas=(opt.beta1, opt.beta2))
    schedule = warmup_cosine(stage.steps, opt.warmup_steps, opt.min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, group_factors(optimizer, schedule))
    workers = config.data.num_workers
    n_slots = d.world * max(1, workers)
    step, positions, elapsed0 = 0, {}, 0.0
    if resume is not None:
        step, positions, elapsed0 = _restore(resume, name, n_slots, model, optimizer, scheduler)
        if d.is_main:
            print(f"{name}: resuming from {resume} (step {step})", flush=True)
    elif init is not None and d.is_main:
        print(f"{name}: initialised from {init}", flush=True)
    units = plan_units(config.data.uri, min_units=n_slots)
    select = recipe.select()
    fields = ["step", "loss", "lr", "grad_norm", "samples", "tokens", "samples_per_s", "tokens_per_s",
              "step_s", "data_wait_s", "elapsed_s", *recipe.metric_names]
    csv_log = CsvLog(stage_dir / "log.csv", fields, step) if d.is_main else None
    trace = Trace(stage_dir / "trace" / f"rank-{d.rank}.jsonl", step) if config.data.trace else None
    progress = _progress_bar(config, stage.steps, step, d)
    params = [p for p in model.parameters() if p.requires_grad]
    kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
    phase_index, batches, loss_value, ckpt = None, None, float("nan"), resume
    start_time = time.time() - elapsed0
    resumed_from = step if resume is not None else None
    while step < stage.steps:
        index, phase = phase_at(stage, step)
        if index != phase_index:
            stream = BatchStream(units, recipe.prepare(phase), recipe.collate(phase),
                                 Budget(stage.batch_size, stage.max_tokens, stage.row_length), d.rank, d.world,
                                 workers, config.run.seed, config.data.shuffle, positions, select)
            batches, phase_index = iter(make_loader(stream, workers)), index
        t0 = time.time()
        optimizer.zero_grad(set_to_none=True)
        loss_sum, samples, tokens, keys, metrics, waited = 0.0, 0, 0, [], {}, 0.0
        for micro in range(stage.grad_accum):
            t_wait = time.perf_counter()
            batch = next(batches).to(d.device)
            waited += time.perf_counter() - t_wait  # the GPU (or CPU) idles on the data
            with D.no_sync(model, micro == stage.grad_accum - 1), autocast(config.run.precision, d.device):
                loss, metrics = recipe.loss(model, batch, StepContext(step, micro, config.run.seed, d))
            (loss / stage.grad_accum).backward()
            positions[batch.slot] = batch.position
            loss_sum += float(loss.detach()) / stage.grad_accum
            samples += batch.images.num_images
            tokens += batch.images.num_tokens
            keys += batch.keys
        hold_frozen(optimizer, step)  # groups frozen until a later step (finecap.train.freeze)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, opt.grad_clip) if opt.grad_clip else None
        lr = max(group["lr"] for group in optimizer.param_groups)
        optimizer.step()
        scheduler.step()
        step += 1
        (loss_value,) = D.all_reduce_mean([loss_sum], d)
        samples, tokens = (int(v) for v in D.all_reduce_sum([samples, tokens], d))
        dt = max(time.time() - t0, 1e-9)
        row = {"step": step, "loss": loss_value, "lr": lr, "samples": samples, "tokens": tokens,
               "grad_norm": float(grad_norm) if grad_norm is not None else None,
               "samples_per_s": samples / dt, "tokens_per_s": tokens / dt, "step_s": dt, "data_wait_s": waited,
               "elapsed_s": time.time() - start_time, **metrics}
        if trace:
            trace.write(step, keys)
        if csv_log:
            csv_log.write(row)
            _report(progress, row, name, stage.steps, config.run.log_every)
        if step % config.run.checkpoint_every == 0 or step == stage.steps:
            ckpt = _save(config, name, recipe, model, optimizer, scheduler, step, positions, n_slots, phase, d,
                         time.time() - start_time)
        if kill_at and step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    for handle in (csv_log, trace, progress):
        if handle is not None:
            handle.close()
    return RunSummary(name, step, loss_value, str(ckpt), resumed_from)


def _restore(resume: Path, name: str, n_slots: int, model, optimizer, scheduler) -> tuple[int, dict, float]:
    state = read_state(resume)
    if state["stage"] != name:
        raise ConfigError(f"checkpoint {resume} is from {state['stage']}, not {name}")
    if state["n_slots"] != n_slots:
        raise ConfigError(f"data.num_workers: the checkpoint was written with {state['n_slots']} reader slots "
                          f"(ranks x workers), this run has {n_slots}; use the same world size and workers")
    trainer = load_trainer_state(resume)
    D.load_optimizer(model, optimizer, trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    positions = {int(k): Position(*v) for k, v in state["positions"].items()}
    return int(state["step"]), positions, float(state.get("elapsed_s", 0.0))


def _save(config, name, recipe, model, optimizer, scheduler, step, positions, n_slots, phase, d, elapsed) -> Path:
    gathered = D.gather_objects({slot: pos.as_list() for slot, pos in positions.items()}, d)
    all_positions = {str(k): v for part in gathered for k, v in part.items()}
    model_state, optim_state = D.full_state(model, optimizer)
    path = None
    if d.is_main:
        state = {"stage": name, "positions": all_positions, "n_slots": n_slots, "world": d.world,
                 "elapsed_s": elapsed, "meta": recipe.meta(phase), "finecap_version": __version__,
                 "config": to_dict(config)}
        path = save_checkpoint(config.stage_dir(name), step, D.unwrap(model), model_state, recipe.tokenizers,
                               {"optimizer": optim_state, "scheduler": scheduler.state_dict()}, state,
                               config.run.keep_checkpoints)
    D.barrier(d)
    return path or latest_checkpoint(config.stage_dir(name))


def _progress_bar(config: TrainConfig, total: int, initial: int, d: D.Dist):
    show = config.run.progress if config.run.progress is not None else sys.stderr.isatty()
    if not (show and d.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _report(progress, row: dict, name: str, total: int, every: int) -> None:
    if progress is not None:
        progress.update(1)
        progress.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", refresh=False)
    elif row["step"] % every == 0 or row["step"] == total:
        print(f"{name} step {row['step']}/{total} loss {row['loss']:.4f} lr {row['lr']:.2e} "
              f"{row['samples_per_s']:.1f} samples/s", flush=True)
