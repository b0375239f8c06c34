"""Typed training configuration (pipelines/train-*.yaml), validated at load.

One file holds the data, model and run settings shared by the curriculum and one section per
stage; `finecap train stageN` uses its stage's section. Unknown keys fail in one line naming the
key (finecap.typed_config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from finecap.typed_config import ConfigError, load_yaml

STAGES = ("stage1", "stage2", "stage3")
TASKS = ("global_caption", "box_to_caption", "caption_to_box", "box_to_ocr", "ocr_to_box")


@dataclass
class OptimConfig:
    lr: float = field(default=1e-3, metadata={"min": 0})
    min_lr_ratio: float = field(default=0.1, metadata={"min": 0, "max": 1})  # cosine floor, x lr
    warmup_steps: int = field(default=10, metadata={"min": 0})
    weight_decay: float = field(default=0.05, metadata={"min": 0})
    beta1: float = field(default=0.9, metadata={"min": 0, "max": 1})
    beta2: float = field(default=0.95, metadata={"min": 0, "max": 1})
    grad_clip: float | None = field(default=1.0, metadata={"min": 0})


@dataclass
class PhaseConfig:
    """One step of the resolution / text-length curriculum."""

    until_step: int | None = field(default=None, metadata={"min": 1})  # None: to the end
    resolution: int = field(default=336, metadata={"min": 28})  # images fit in resolution^2 pixels
    text_length: int = field(default=64, metadata={"min": 8})  # max tokens of a caption / sequence


@dataclass
class DataConfig:
    uri: str | None = None  # a finecap output (its data/*.parquet) on any fsspec URI
    num_workers: int = field(default=1, metadata={"min": 0})  # dataloader worker processes per rank
    shuffle: bool = True
    trace: bool = False  # write the keys each rank consumes to OUTPUT/stageN/trace/ (audits)


@dataclass
class VisionConfig:
    preset: str = "tiny"  # tiny | small | finevit-0.86b
    width: int | None = field(default=None, metadata={"min": 8})
    layers: int | None = field(default=None, metadata={"min": 1})
    heads: int | None = field(default=None, metadata={"min": 1})
    ffn: int | None = field(default=None, metadata={"min": 1})


@dataclass
class TowerConfig:
    """A transformers model: `tiny` is built locally with random weights, else a hub name or path."""

    model: str = "tiny"
    hidden_size: int = field(default=128, metadata={"min": 8})  # tiny only
    layers: int = field(default=2, metadata={"min": 1})  # tiny only
    heads: int = field(default=4, metadata={"min": 1})  # tiny only
    intermediate_size: int = field(default=256, metadata={"min": 8})  # tiny only
    # Unused by the LM; kept so the model.lm section of earlier checkpoints' saved configs still loads.
    pooling: Literal["mean", "cls", "last"] = "mean"
    trust_remote_code: bool = False


@dataclass
class TextTowerConfig(TowerConfig):
    """Stage II's text tower: a TowerConfig plus SigLIP-aware pooling and a freeze-then-train schedule.

    `auto` pooling is `model` for SigLIP / SigLIP2 text encoders (their own pooled output: the
    last position through their head, as SigLIP trained it) and `mean` for any other encoder.
    The encoder's weights get no update for the first `freeze_until_step` steps, then train at
    `lr_scale` x the stage's schedule; the text projection head trains throughout.
    """

    pooling: Literal["auto", "model", "mean", "cls", "last"] = "auto"
    freeze_until_step: int = field(default=0, metadata={"min": 0})  # 0: never frozen
    lr_scale: float = field(default=1.0, metadata={"min": 0})  # 0 freezes the encoder for the whole stage


@dataclass
class TokenizerConfig:
    """The tiny towers' tokenizer: byte-level BPE trained on the first rows' texts (no download)."""

    vocab_size: int = field(default=512, metadata={"min": 300})
    train_rows: int = field(default=2000, metadata={"min": 1})


@dataclass
class ModelConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    lm: TowerConfig = field(default_factory=TowerConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)


@dataclass
class TeacherConfig:
    """Stage I target: normalised pixels, a frozen FineViT checkpoint, or a transformers model (DINOv3)."""

    kind: Literal["pixels", "finevit", "hf"] = "pixels"
    model: str | None = None  # finevit: checkpoint dir; hf: hub name or path
    image_mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])  # hf only
    image_std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])  # hf only


@dataclass
class StageConfig:
    steps: int = field(default=100, metadata={"min": 1})
    batch_size: int = field(default=32, metadata={"min": 1})  # images per micro-batch, at most
    max_tokens: int | None = field(default=None, metadata={"min": 1})  # patch tokens per micro-batch
    row_length: int | None = field(default=None, metadata={"min": 4})  # packing row; None: longest image
    grad_accum: int = field(default=1, metadata={"min": 1})
    optim: OptimConfig = field(default_factory=OptimConfig)
    # "previous": the previous stage's last checkpoint under the same output; a dir; or null.
    init_from: str | None = "previous"
    phases: list[PhaseConfig] = field(default_factory=lambda: [PhaseConfig()])


@dataclass
class Stage1Config(StageConfig):
    mask_ratio: float = field(default=0.75, metadata={"min": 0.05, "max": 0.95})
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    phases: list[PhaseConfig] = field(default_factory=lambda: [PhaseConfig(resolution=256)])


@dataclass
class RegionTermConfig:
    """Stage II's region-text term (finecap/train/region_contrast.py); weight 0 leaves it out."""

    weight: float = field(default=0.0, metadata={"min": 0})  # x the region term, added to the global loss
    per_image: int = field(default=2, metadata={"min": 1})  # regions sampled per image and step, at most
    text: Literal["caption", "phrase", "category"] = "caption"  # which field of a region is its text


@dataclass
class Stage2Config(StageConfig):
    embed_dim: int = field(default=128, metadata={"min": 8})
    init_logit_scale: float = field(default=10.0, metadata={"min": 0.01})  # SigLIP: t' = log 10
    init_logit_bias: float = -10.0
    # Which global caption a row contributes each time: one at random, or its longest / shortest.
    caption: Literal["random", "longest", "shortest"] = "random"
    regions: RegionTermConfig = field(default_factory=RegionTermConfig)
    phases: list[PhaseConfig] = field(default_factory=lambda: [
        PhaseConfig(until_step=None, resolution=336, text_length=64)])


@dataclass
class Stage3Config(StageConfig):
    tasks: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TASKS, 1.0))
    # Which global captions the global_caption task answers with: any of a row's, or only its
    # longest (the detailed recaption) or shortest; one prompt cannot ask for two styles.
    caption: Literal["random", "longest", "shortest"] = "random"
    vision_lr_scale: float = field(default=1.0, metadata={"min": 0})  # 0 freezes the vision tower
    phases: list[PhaseConfig] = field(default_factory=lambda: [PhaseConfig(resolution=448, text_length=256)])


@dataclass
class RunConfig:
    output: str | None = None  # local dir: OUTPUT/stageN/{checkpoints,log.csv}
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast where the device has it
    strategy: Literal["ddp", "fsdp"] = "ddp"  # under torchrun; fsdp shards the vision tower's blocks
    threads: int | None = field(default=None, metadata={"min": 1})  # torch intra-op threads per process
    seed: int = 0
    log_every: int = field(default=10, metadata={"min": 1})
    checkpoint_every: int = field(default=100, metadata={"min": 1})
    keep_checkpoints: int = field(default=2, metadata={"min": 1})
    resume: bool = True  # continue from OUTPUT/stageN's last checkpoint if there is one
    progress: bool | None = None  # progress bar; None: when stderr is a terminal


@dataclass
class TrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    stage3: Stage3Config = field(default_factory=Stage3Config)
    base_dir: str = ""  # the YAML's folder, set at load

    def stage(self, name: str) -> StageConfig:
        return getattr(self, name)

    def stage_dir(self, name: str) -> Path:
        return Path(self.run.output) / name


def load_train_config(path: str | Path, overrides: list[str] = (), **direct: object) -> TrainConfig:
    """Load, override (`--set a.b=v`) and validate a training YAML; ConfigError names the bad key."""
    config = load_yaml(TrainConfig, path, overrides, direct)
    check(config)
    return config


def check(config: TrainConfig) -> None:
    """Cross-field rules the types cannot say."""
    for name in STAGES:
        stage = config.stage(name)
        if not stage.phases:
            raise ConfigError(f"{name}.phases: at least one phase is needed")
        ends = [p.until_step for p in stage.phases]
        if any(e is None for e in ends[:-1]):
            raise ConfigError(f"{name}.phases: only the last phase may omit until_step")
        bounded = [e for e in ends if e is not None]
        if bounded != sorted(set(bounded)):
            raise ConfigError(f"{name}.phases: until_step must increase ({ends})")
    unknown = set(config.stage3.tasks) - set(TASKS)
    if unknown:
        raise ConfigError(f"stage3.tasks: unknown task {sorted(unknown)[0]!r}; known: {', '.join(TASKS)}")
    if not any(w > 0 for w in config.stage3.tasks.values()):
        raise ConfigError("stage3.tasks: at least one task needs a positive weight")
    if config.stage1.teacher.kind != "pixels" and not config.stage1.teacher.model:
        raise ConfigError(f"stage1.teacher.model: required for teacher kind {config.stage1.teacher.kind!r}")
    from finecap.train.vit import PRESETS

    if config.model.vision.preset not in PRESETS:
        raise ConfigError(f"model.vision.preset: unknown {config.model.vision.preset!r}; known: {', '.join(PRESETS)}")


def require_paths(config: TrainConfig) -> None:
    """Training needs data and an output; say which is missing before any work starts."""
    if not config.data.uri:
        raise ConfigError("data.uri: no training data (pass --data URI or set data.uri)")
    if not config.run.output:
        raise ConfigError("run.output: no output directory (pass --output DIR or set run.output)")


def phase_at(stage: StageConfig, step: int) -> tuple[int, PhaseConfig]:
    """The curriculum phase (index, phase) that step `step` (0-based) trains in."""
    for i, phase in enumerate(stage.phases):
        if phase.until_step is None or step < phase.until_step:
            return i, phase
    return len(stage.phases) - 1, stage.phases[-1]
