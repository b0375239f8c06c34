"""The stage ablation: each checkpoint's encoder scored on the local tasks through one fixed probe.

The paper scores the local tasks (box -> caption, caption -> box, box -> OCR, OCR -> box) after
stage I, after I+II and after I+II+III. A stage I or II checkpoint has no LM to answer with, so
every checkpoint's vision tower is measured the same way: a "probe", a stage III run with the
tower frozen (stage3.vision_lr_scale 0) and a fresh LM and projector, with one config, seed,
step count, batch and data order for all checkpoints; the encoder is the only difference. Then
`evaluate_grounding` scores the probe on the held-out `--data`. A stage III checkpoint is also
scored as it was trained (its own LM and projector), beside its probe.

The probe's LM, tokenizer, tasks and optimiser are the stage III section of the config saved in
the latest-stage checkpoint given (the curriculum's own stage III); `--set` changes them for
every probe alike. Each probe trains at its checkpoint's resolution (`--set
stage3.phases.0.resolution=N` pins one for all). The default probe, 150 steps of 16 images, is
sized for a CPU; the torch threads are the config's run.threads. Probes are written under a
temporary folder (or --work) and removed once scored.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from finecap import storage
from finecap.errors import UserError
from finecap.train.checkpoint import latest_checkpoint, read_state
from finecap.train.config import STAGES, TrainConfig, check
from finecap.typed_config import ConfigError, build, parse_override, set_dotted

VISION_FILES = ("vision.safetensors", "vision.json")
STAGE_LABELS = {"stage1": "after stage I", "stage2": "after I+II", "stage3": "after I+II+III"}
# evaluate_grounding's sections a row carries, and the accuracy of each that the average reads
# (the paper's local-task average is a mean of accuracies; mean IoU is shown, not averaged).
ACCURACIES = {"caption_to_box": "acc_iou50", "caption_to_box_match": "acc", "box_to_caption": "acc",
              "ocr_to_box": "acc_iou50", "box_to_ocr": "exact"}
COLUMNS = (("caption_to_box", "acc_iou50", "cap->box@.5"), ("caption_to_box", "mean_iou", "cap->box IoU"),
           ("caption_to_box_match", "acc", "cap->box match"), ("box_to_caption", "acc", "box->cap"),
           ("ocr_to_box", "acc_iou50", "ocr->box@.5"), ("box_to_ocr", "exact", "box->ocr"))
# Keys the probe sets itself: a --set of one would break what the ablation compares.
FORCED = {"stage3.vision_lr_scale": "the probe keeps the encoder frozen",
          "stage3.init_from": "the probe starts from each checkpoint's encoder",
          "data.uri": "the probe trains on --train-data", "run.output": "probes live under --work",
          "run.resume": "every probe starts fresh"}


@dataclass(frozen=True)
class StageCheckpoint:
    path: Path
    stage: str
    step: int
    resolution: int
    config: dict  # the training config saved with it, as plain data


def find_checkpoints(given: Sequence[str]) -> list[StageCheckpoint]:
    """Checkpoint folders, stage folders (their latest) or run outputs (each stage's latest), in order."""
    found = []
    for text in given:
        path = Path(text)
        if (path / "state.json").exists():
            folders = [path]
        elif latest_checkpoint(path) is not None:
            folders = [latest_checkpoint(path)]
        else:
            folders = [c for c in (latest_checkpoint(path / s) for s in STAGES) if c is not None]
        if not folders:
            raise UserError(f"--checkpoints: no checkpoint at {text}")
        found += [_read_checkpoint(f) for f in folders]
    return found


def _read_checkpoint(path: Path) -> StageCheckpoint:
    try:
        state = read_state(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"--checkpoints: {path} is not a FineViT checkpoint (state.json: {exc})") from None
    missing = [name for name in VISION_FILES if not (path / name).exists()]
    named = isinstance(state, dict) and state.get("stage") in STAGES and "config" in state
    if missing or not named or "resolution" not in state.get("meta", {}):
        why = f"no {missing[0]}" if missing else "its state.json names no FineViT stage, config and resolution"
        raise UserError(f"--checkpoints: {path} is not a FineViT checkpoint ({why})")
    return StageCheckpoint(path.resolve(), state["stage"], int(state["step"]), int(state["meta"]["resolution"]),
                           state["config"])


def probe_data(data: str, train_data: str | None) -> str:
    """The probe's training split: --train-data, else --data's sibling `train`; both must hold shards."""
    from finecap.train.shards import data_files

    if train_data is None:
        parent = posixpath.dirname(data.rstrip("/")) if "://" in data else os.path.dirname(data.rstrip("/"))
        train_data = storage.join(parent, "train") if parent else "train"
        if not storage.exists(train_data):
            raise UserError(f"--train-data: not given, and --data's sibling {train_data} does not exist")
    if _same(train_data, data):
        raise UserError(f"--train-data: {train_data} is --data; the probe must train on other rows than it is scored on")
    for flag, uri in (("--data", data), ("--train-data", train_data)):
        try:
            data_files(uri)
        except FileNotFoundError as exc:
            raise UserError(f"{flag}: {exc}") from None
    return train_data


def _same(a: str, b: str) -> bool:
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


def reference_checkpoint(checkpoints: Sequence[StageCheckpoint]) -> StageCheckpoint:
    """The latest stage (then step) given: its saved config's stage III section defines every probe."""
    return max(checkpoints, key=lambda c: (STAGES.index(c.stage), c.step))


def probe_config(reference: StageCheckpoint, checkpoint: StageCheckpoint, folder: Path, train_data: str,
                 steps: int | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """The frozen-encoder stage III config of one probe; only init_from and resolution follow
    `checkpoint`. By default the probe trains as long as the reference's own stage III did, at
    its batch size: measured on the synthetic benchmark, a 150-step probe at batch 16 left the
    matching tasks at chance for every encoder, so it could not rank them."""
    raw = copy.deepcopy(reference.config)
    saved = build(TrainConfig, copy.deepcopy(raw)).stage3
    defaults = {"data.trace": False, "run.progress": False, "run.keep_checkpoints": 1,
                "stage3.steps": saved.steps if steps is None else steps,
                "stage3.phases": [{"until_step": None, "resolution": checkpoint.resolution,
                                   "text_length": saved.phases[-1].text_length}]}
    for key, value in defaults.items():
        set_dotted(raw, key, value)
    for text in overrides:
        key, value = parse_override(text)
        if key in FORCED:
            raise ConfigError(f"{key}: {FORCED[key]}; drop the --set")
        set_dotted(raw, key, value)
    forced = {"stage3.vision_lr_scale": 0.0, "stage3.init_from": str(folder / "encoder"), "data.uri": train_data,
              "run.output": str(folder), "run.resume": False}
    for key, value in forced.items():
        set_dotted(raw, key, value)
    config = build(TrainConfig, raw)
    check(config)
    config.run.checkpoint_every = config.run.log_every = config.stage3.steps  # one checkpoint, one log line
    return config


def write_encoder(checkpoint: StageCheckpoint, folder: Path) -> Path:
    """A checkpoint folder holding only the vision tower (linked), so stage III builds a fresh LM and heads."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in VISION_FILES:
        (folder / name).symlink_to(checkpoint.path / name)
    (folder / "state.json").write_text(json.dumps({"stage": checkpoint.stage, "step": checkpoint.step}) + "\n")
    return folder


def same_weights(a: Path, b: Path) -> bool:
    """Whether two vision.safetensors hold the same tensors, bit for bit."""
    import torch
    from safetensors.torch import load_file

    left, right = load_file(a), load_file(b)
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def average_local(scores: dict) -> float | None:
    """Mean of the task accuracies the data allowed (a task with no examples has None and is left out)."""
    values = [scores[task][key] for task, key in ACCURACIES.items()
              if scores.get(task, {}).get(key) is not None]
    return sum(values) / len(values) if values else None


def make_row(checkpoint: StageCheckpoint, measured: str, resolution: int, scores: dict, **extra) -> dict:
    row = {"stage": checkpoint.stage, "label": STAGE_LABELS[checkpoint.stage], "step": checkpoint.step,
           "checkpoint": str(checkpoint.path), "measured": measured, "resolution": resolution, **extra}
    row.update({task: scores[task] for task in ACCURACIES})
    row["average_local"] = average_local(scores)
    return row


def evaluate_ablation(checkpoints: Sequence[str], data: str, train_data: str | None = None,
                      probe_steps: int | None = None, limit: int | None = None, work: str | None = None,
                      overrides: Sequence[str] = (), keep_probes: bool = False) -> dict:
    """One row per checkpoint's probe, plus an "as trained" row per stage III checkpoint, in stage order."""
    if probe_steps is not None and probe_steps < 1:
        raise UserError(f"--probe-steps: must be >= 1 (got {probe_steps})")
    if keep_probes and work is None:
        raise UserError("--keep-probes: needs --work DIR (a temporary folder is removed)")
    found = sorted(find_checkpoints(checkpoints), key=lambda c: STAGES.index(c.stage))
    train_data = probe_data(data, train_data)
    reference = reference_checkpoint(found)
    if work is not None:
        Path(work).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="finecap-ablation-", dir=work) as scratch:
        root = Path(work) if keep_probes else Path(scratch)
        folders = [root / f"probe-{i:02d}-{c.stage}-step{c.step:06d}" for i, c in enumerate(found)]
        configs = [probe_config(reference, c, f, train_data, probe_steps, overrides)  # all errors before work
                   for c, f in zip(found, folders, strict=True)]
        taken = [f for f in folders if f.exists()]
        if taken:
            raise UserError(f"--work: {taken[0]} exists; remove it or choose another --work")
        rows = []
        for checkpoint, folder, config in zip(found, folders, configs, strict=True):
            rows.append(_probe_row(checkpoint, folder, config, data, limit, keep_probes))
            if checkpoint.stage == "stage3":
                rows.append(_as_trained_row(checkpoint, data, limit))
    first = configs[0]
    return {"task": "ablation", "data": data, "train_data": train_data, "limit": limit,
            "probe": {"reference": str(reference.path), "steps": first.stage3.steps,
                      "batch_size": first.stage3.batch_size, "seed": first.run.seed,
                      "tasks": dict(first.stage3.tasks), "lm": first.model.lm.model, "vision_lr_scale": 0.0},
            "rows": rows}


def _probe_row(checkpoint: StageCheckpoint, folder: Path, config: TrainConfig, data: str, limit: int | None,
               keep: bool) -> dict:
    from finecap.train.eval_grounding import evaluate_grounding
    from finecap.train.loop import run_stage

    started = time.perf_counter()
    write_encoder(checkpoint, folder / "encoder")
    probe = Path(run_stage(config, "stage3").checkpoint)
    scores = evaluate_grounding(str(probe), data, limit=limit)
    unchanged = same_weights(checkpoint.path / "vision.safetensors", probe / "vision.safetensors")
    extra = {"encoder_unchanged": unchanged, "seconds": round(time.perf_counter() - started, 1),
             **({"probe_checkpoint": str(probe)} if keep else {})}
    if not keep:
        shutil.rmtree(folder)
    return make_row(checkpoint, "probe", config.stage3.phases[-1].resolution, scores, **extra)


def _as_trained_row(checkpoint: StageCheckpoint, data: str, limit: int | None) -> dict:
    from finecap.train.eval_grounding import evaluate_grounding

    started = time.perf_counter()
    scores = evaluate_grounding(str(checkpoint.path), data, limit=limit)
    return make_row(checkpoint, "as trained", checkpoint.resolution, scores,
                    seconds=round(time.perf_counter() - started, 1))


def format_table(result: dict) -> str:
    """The paper's shape: a row per stage (probe, and stage III as trained), the local tasks, their average."""
    header = ["encoder", "measured", *(title for _, _, title in COLUMNS), "average local"]
    lines = [header]
    for row in result["rows"]:
        cells = [_percent(row.get(task, {}).get(key)) for task, key, _ in COLUMNS]
        lines.append([f"{row['label']} (step {row['step']})", row["measured"], *cells,
                      _percent(row["average_local"])])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(_align(cell, width, left=i < 2) for i, (cell, width) in enumerate(zip(line, widths, strict=True)))
            for line in lines]
    probe = result["probe"]
    text.append(f"percent; probe: stage III with the encoder frozen, a fresh {probe['lm']} LM, {probe['steps']} steps "
                f"x batch {probe['batch_size']}, seed {probe['seed']}, trained on {result['train_data']}; "
                f"scored on {result['data']}; average local = mean of the task accuracies (not the IoU)")
    return "\n".join(text)


def _align(cell: str, width: int, left: bool) -> str:
    return cell.ljust(width) if left else cell.rjust(width)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"
