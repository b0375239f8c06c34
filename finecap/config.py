"""The typed pipeline configuration: YAML + `--set key=value` overrides, validated at load.

Everything a run needs is here, so a wrong key fails before any work starts, naming the key.
What of it changes the output is declared by each stage (`Stage.semantic`) and hashed into
per-stage fingerprints by finecap/stages/fingerprints.py (which also has `config_hash`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from finecap.config_balance import BalanceConfig
from finecap.config_captioners import (  # noqa: F401 (re-exported)
    CaptionerConfig,
    EngineConfig,
    HygieneConfig,
    OpenAIEndpointConfig,
)
from finecap.config_local import DetectConfig, OcrConfig, PhrasesConfig, RegionsConfig  # noqa: F401 (re-exported)
from finecap.config_quality import QualityConfig
from finecap.config_resources import Resources
from finecap.prompts import IMAGE_MARKER, load_prompt, region_template
from finecap.typed_config import ConfigError, load_yaml, parse_override, to_dict  # noqa: F401 (re-exported)

__all__ = ["ConfigError", "PipelineConfig", "QualityConfig", "Resources", "load_config"]


@dataclass
class RunConfig:
    """How to run; never part of the config hash."""

    ray_address: str | None = None  # None: an embedded local Ray
    num_cpus: int | None = field(default=None, metadata={"min": 1})  # embedded Ray only; None: all cores
    object_store_gib: float = field(default=2.0, metadata={"min": 0.1})
    work_dir: str | None = None  # local scratch (Ray temp dir); None: a folder beside a local output
    progress_interval_s: float = field(default=10.0, metadata={"min": 0.5})
    # The output lock (runtime/lock.py): the driver renews its lease every lock_heartbeat_s; a lock
    # not renewed for lock_lease_s is stale and the next run takes it over (at once when its
    # driver's pid is gone on the same host). A run on another host waits out the lease.
    lock_lease_s: float = field(default=60.0, metadata={"min": 5.0})
    lock_heartbeat_s: float = field(default=10.0, metadata={"min": 0.5})
    # Error isolation (runtime/isolation.py). A batch whose worker died (segfault, OOM kill,
    # watchdog) is retried whole this many times, then split in halves down to the row that kills
    # it, which becomes a `worker_crash` (or `stage_timeout`) reject.
    crash_retries: int = field(default=1, metadata={"min": 0, "max": 10})
    # Times Ray restarts one stage worker (actor, or task attempt) over its life; isolating one
    # crashing row in a batch of B rows takes crash_retries + 1 + ceil(log2 B) restarts.
    max_worker_restarts: int = field(default=24, metadata={"min": 1})
    # Worker deaths in a row while a stage loads its model (OOM at load, a native crash) before the
    # run stops in one line; a load that succeeds resets the count.
    load_retries: int = field(default=2, metadata={"min": 0, "max": 10})
    # Watchdog: a stage call on one batch (or piece of one) that runs longer than this is treated
    # as a crash (its worker exits and the batch is isolated). Generous: a batch of 16 images at
    # 8 captioners' worth of tokens on a slow GPU takes minutes, not half an hour.
    batch_timeout_s: float = field(default=1800.0, metadata={"min": 1.0})

    def __post_init__(self) -> None:
        if self.lock_heartbeat_s * 2 > self.lock_lease_s:  # one late heartbeat must not lapse the lease
            raise ConfigError(f"run.lock_heartbeat_s: must be at most half of run.lock_lease_s "
                              f"({self.lock_lease_s}), got {self.lock_heartbeat_s}")


@dataclass
class SourceConfig:
    # auto: whatever `uri` is (finecap/sources/detect.py), resolved before any work. images: a
    # folder or glob of image files. urls: URL lists, fetched by img2dataset in the fetch stage.
    # img2dataset: the output folder of an earlier img2dataset run (parquet or webdataset), read
    # without fetching again. finecap: an earlier FineCap output, the input of a new build. An
    # explicit kind is checked against the input and refused, in one line, when it is another kind.
    kind: Literal["auto", "images", "urls", "img2dataset", "finecap"] = "auto"
    uri: str | None = None
    shard_size: int = field(default=64, metadata={"min": 1})
    limit: int | None = field(default=None, metadata={"min": 1})
    extensions: list[str] = field(
        default_factory=lambda: [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"]
    )
    # URL lists, img2dataset's convention: .parquet/.csv/.tsv/.jsonl/.txt (optionally .gz), one
    # row per URL; "auto" goes by the file extension. A missing caption column gives no alt text.
    format: Literal["auto", "parquet", "csv", "tsv", "jsonl", "txt"] = "auto"
    url_col: str = "url"
    caption_col: str | None = "caption"


@dataclass
class FetchConfig:
    """Downloading URL lists (img2dataset's downloader behind FineCap's URL policy)."""

    # Hosts resolving to private, loopback, link-local, multicast or reserved addresses are
    # refused before any connection unless this is true (tests set it to reach 127.0.0.1).
    allow_private_addresses: bool = False
    timeout_s: float = field(default=10.0, metadata={"min": 0.1})  # each socket operation, at most
    # The wall-clock bound per URL: lookup, connect, TLS, status line and headers (any number of
    # 1xx), body, every redirect hop and every retry together (finecap/fetch/deadline.py).
    max_seconds: float = field(default=60.0, metadata={"min": 0.1})
    retries: int = field(default=1, metadata={"min": 0})  # img2dataset's per-URL retries
    max_bytes: int = field(default=50_000_000, metadata={"min": 1})  # response body
    max_redirects: int = field(default=5, metadata={"min": 0})
    # Refuse bodies announced as something other than image/* or a generic binary type.
    check_content_type: bool = True
    thread_count: int = field(default=32, metadata={"min": 1})  # concurrent requests per fetch task
    user_agent_token: str | None = None  # identifies the crawler; X-Robots-Tag rules may name it
    disallowed_header_directives: list[str] = field(
        default_factory=lambda: ["noai", "noimageai", "noindex", "noimageindex"]
    )
    # I/O bound: a quarter CPU per task; Ray Data spreads the tasks over the cluster's nodes.
    resources: Resources = field(
        default_factory=lambda: Resources(num_cpus=0.25, concurrency=4, batch_size=64)
    )


def _default_image_formats() -> list[str]:
    from finecap.image_ops import DEFAULT_FORMATS

    return list(DEFAULT_FORMATS)


@dataclass
class LimitsConfig:
    """Bounds every stage that decodes an image applies (prepare, caption, detect, OCR, regions):
    one place they all read, so no stage reads another stage's section."""

    # Decompression-bomb bound, checked from the header before decoding. At most Pillow's own
    # hard limit (2 x Image.MAX_IMAGE_PIXELS, which FineCap leaves at its default; image_ops.py).
    max_pixels: int = field(default=64_000_000, metadata={"min": 1, "max": 178_956_970})


@dataclass
class PrepareConfig:
    max_bytes: int = field(default=50_000_000, metadata={"min": 1})
    # Pillow format names prepare opens; EPS never. EPS or a default format left off the list is a
    # `format_not_allowed` reject, any other unopened file a `decode_error`.
    allowed_formats: list[str] = field(default_factory=_default_image_formats)
    # The copy the model stages see: longest side bounded, re-encoded once on a CPU stage.
    model_max_side: int = field(default=768, metadata={"min": 16})
    model_image_format: Literal["jpeg", "png"] = "jpeg"
    resources: Resources = field(default_factory=lambda: Resources(num_cpus=1, batch_size=16))

    def __post_init__(self) -> None:
        from finecap.image_ops import check_formats

        try:
            self.allowed_formats = list(check_formats(self.allowed_formats))
        except ValueError as exc:
            raise ConfigError(f"prepare.allowed_formats: {exc}") from None


@dataclass
class FilterConfig:
    """Which prepared images are kept. Defaults are the paper's size rules and quality thresholds
    measured to drop about 3% of ordinary photos (docs/filters.md, benchmarks/filter_thresholds.py)."""

    enabled: bool = True
    min_short_side: int = field(default=448, metadata={"min": 1})
    max_aspect_ratio: float = field(default=3.0, metadata={"min": 1.0})  # long / short side
    # Quality scores of the prepare stage (finecap/image_ops.py); null turns a rule off.
    min_blur: float | None = field(default=15.0, metadata={"min": 0})  # variance of the Laplacian
    min_brightness: float | None = field(default=0.06, metadata={"min": 0, "max": 1})  # mean luma
    max_brightness: float | None = field(default=0.85, metadata={"min": 0, "max": 1})
    max_clipped: float | None = field(default=0.45, metadata={"min": 0, "max": 1})  # share at 0 or 255
    max_saturation: float | None = field(default=0.85, metadata={"min": 0, "max": 1})  # mean HSV S


@dataclass
class DedupConfig:
    """Duplicates across the whole output, removed by a pass after the build (docs/architecture.md)."""

    enabled: bool = True
    exact: bool = True  # same decoded pixels (sha256)
    near: bool = True  # perceptual hashes within `near_threshold` bits
    # Measured: re-encoded and resized copies differ by <= 4 bits, distinct photos by >= 20 and
    # distinct sample scenes by >= 6 (benchmarks/phash_distances.py).
    near_threshold: int = field(default=4, metadata={"min": 0, "max": 32})
    # Candidate pairs must agree exactly on (near_blocks - near_threshold) of the 64 bits' blocks:
    # more blocks mean longer bucket keys (fewer chance candidates) but more tables to shuffle
    # (C(near_blocks, near_threshold) tables: 15 for 6 blocks and 4 bits, with 20-22-bit keys).
    near_blocks: int = field(default=6, metadata={"min": 1, "max": 64})
    rows_per_partition: int = field(default=2_000_000, metadata={"min": 1})  # more: parallel on Ray

    def __post_init__(self) -> None:
        if self.near and self.near_blocks <= self.near_threshold:
            raise ConfigError(
                f"dedup.near_blocks: must be more than dedup.near_threshold ({self.near_threshold}), "
                f"got {self.near_blocks}"
            )


@dataclass
class CaptionConfig:
    enabled: bool = True
    captioners: list[CaptionerConfig] = field(default_factory=list)
    # all: every captioner captions every image; weighted: `captions_per_image` captioners per
    # image, drawn deterministically from the key with the captioners' weights.
    assign: Literal["all", "weighted"] = "all"
    captions_per_image: int = field(default=1, metadata={"min": 1})
    hygiene: HygieneConfig = field(default_factory=HygieneConfig)
    resources: Resources = field(default_factory=lambda: Resources(num_cpus=1, batch_size=32))


@dataclass
class OutputConfig:
    uri: str | None = None
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"


@dataclass
class PipelineConfig:
    run: RunConfig = field(default_factory=RunConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    phrases: PhrasesConfig = field(default_factory=PhrasesConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    ocr: OcrConfig = field(default_factory=OcrConfig)
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    prompts_dir: str = "prompts"  # relative to the YAML file's folder
    # Filled by load_config: absolute folder of the YAML, for relative paths.
    base_dir: str = ""

    def prompts_path(self) -> Path:
        path = Path(self.prompts_dir)
        return path if path.is_absolute() else Path(self.base_dir) / path

    def prompt_ids(self) -> list[str]:
        ids = {c.prompt for c in self.caption.captioners} if self.caption.enabled else set()
        if self.regions.enabled and self.regions.captioner:
            ids.add(self.regions.captioner.prompt)
        if self.detect.enabled and self.detect.engine == "vlm" and self.detect.grounder:
            ids.add(self.detect.grounder.prompt)
        return sorted(ids)


def load_config(path: str | Path, overrides: list[str] = (), **direct: object) -> PipelineConfig:
    """Load, override and validate a pipeline YAML; raise ConfigError naming the bad key.

    `direct` takes dotted keys (e.g. `{"source.uri": ...}`) from dedicated CLI flags.
    """
    config = load_yaml(PipelineConfig, path, overrides, direct)
    _check(config)
    return config


def _check(config: PipelineConfig) -> None:
    """Cross-field rules the types cannot say."""
    if config.caption.enabled:
        if not config.caption.captioners:
            raise ConfigError("caption.captioners: at least one captioner is needed when caption.enabled")
        names = [c.name for c in config.caption.captioners]
        if len(set(names)) != len(names):
            raise ConfigError(f"caption.captioners: names must be unique (got {names})")
        caption = config.caption
        if caption.assign == "weighted" and caption.captions_per_image > len(caption.captioners):
            raise ConfigError(
                f"caption.captions_per_image: {caption.captions_per_image} is more than the "
                f"{len(caption.captioners)} captioners"
            )
        for i, captioner in enumerate(config.caption.captioners):
            _check_captioner(config, captioner, f"caption.captioners.{i}")
    _check_region_stages(config)
    _check_balance(config)
    _check_restarts(config)


def crash_isolation_restarts(config: PipelineConfig, batch_size: int) -> int:
    """Worker restarts that isolating one crashing row in a batch of `batch_size` rows takes."""
    return config.run.crash_retries + 1 + math.ceil(math.log2(max(batch_size, 1)))


def _check_restarts(config: PipelineConfig) -> None:
    for section in ("fetch", "prepare", "caption", "phrases", "detect", "ocr", "regions", "quality"):
        batch = getattr(config, section).resources.batch_size
        needed = crash_isolation_restarts(config, batch)
        if config.run.max_worker_restarts < needed:
            raise ConfigError(
                f"run.max_worker_restarts: {config.run.max_worker_restarts} restarts cannot isolate a "
                f"crashing row in {section}'s batches of {batch} (needs {needed})"
            )


def _check_region_stages(config: PipelineConfig) -> None:
    """Each local-caption stage needs the stage that feeds it."""
    if config.phrases.enabled and not config.caption.enabled:
        raise ConfigError("phrases.enabled: phrases come from the global captions; enable caption")
    names = [c.name for c in config.caption.captioners]
    for i, name in enumerate(config.phrases.captioners):
        if name not in names:
            raise ConfigError(f"phrases.captioners.{i}: no captioner named {name!r} (captioners: {names})")
    if config.detect.enabled and not config.phrases.enabled:
        raise ConfigError("detect.enabled: the detector grounds the phrases; enable phrases")
    _check_detector(config)
    regions = config.regions
    if not regions.enabled:
        return
    if not (config.detect.enabled or config.ocr.enabled):
        raise ConfigError("regions.enabled: regions come from detect or ocr; enable one of them")
    if regions.captioner is None:
        raise ConfigError("regions.captioner: a captioner is needed when regions.enabled")
    prompt = _check_captioner(config, regions.captioner, "regions.captioner")
    if regions.coordinates and "{box}" not in prompt.text:
        raise ConfigError(f"regions.coordinates: prompt {prompt.id} has no {{box}} placeholder")
    text = region_template(prompt.text, regions.view, regions.coordinates)
    if regions.view in ("whole", "shared") and "{box}" not in text:
        raise ConfigError(f"regions.view: {regions.view!r} names the region by its box, and prompt {prompt.id} "
                          "has no {box} placeholder for it")
    markers, wanted = text.count(IMAGE_MARKER), 2 if regions.view == "shared" else 0
    if markers != wanted:  # shared: one marker where each of its two images goes
        raise ConfigError(f"regions.view: prompt {prompt.id} needs {wanted} {IMAGE_MARKER} line(s) for view "
                          f"{regions.view!r}, found {markers}")


def _check_balance(config: PipelineConfig) -> None:
    balance = config.balance
    if (balance.enabled or balance.selection) and not config.regions.enabled:
        key = "balance.enabled" if balance.enabled else "balance.selection"
        raise ConfigError(f"{key}: the balance selects which regions the regions stage captions; enable regions")
    if balance.enabled and balance.selection:
        raise ConfigError("balance.selection: a balanced build (balance.enabled) writes its own selection; "
                          "set one or the other")


def _check_detector(config: PipelineConfig) -> None:
    detect = config.detect
    if not detect.enabled or detect.engine != "vlm":
        return
    if detect.grounder is None:
        raise ConfigError("detect.grounder: engine vlm needs a grounder (model, prompt, ...)")
    prompt = _check_captioner(config, detect.grounder, "detect.grounder")
    if "{phrase}" not in prompt.text:
        raise ConfigError(f"detect.grounder.prompt: prompt {prompt.id} has no {{phrase}} placeholder")


def _check_captioner(config: PipelineConfig, captioner: CaptionerConfig, key: str):
    """An engine's endpoint and its prompt file; returns the prompt."""
    if captioner.engine == "openai" and not captioner.openai.base_urls:
        raise ConfigError(f"{key}.openai.base_urls: the openai engine needs a URL")
    try:
        return load_prompt(config.prompts_path(), captioner.prompt)
    except FileNotFoundError as exc:
        raise ConfigError(f"{key}.prompt: {exc}") from None


def config_to_yaml(config: PipelineConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
