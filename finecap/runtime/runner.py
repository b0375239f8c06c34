"""The build driver: plan shards, skip committed ones, run the graph, commit shards as they finish."""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from finecap import __version__, storage
from finecap.config import ConfigError, PipelineConfig, config_hash
from finecap.models.registry import resolve_model
from finecap.models.revision import model_revision
from finecap.prompts import load_prompt
from finecap.runtime.commit import ShardProgress, commit_shard
from finecap.runtime.graph import build_dataset
from finecap.runtime.ray_session import ray_session
from finecap.runtime.resume import committed_for_run
from finecap.schema import SCHEMA_VERSION
from finecap.sources import make_source

log = logging.getLogger(__name__)


@dataclass
class BuildSummary:
    output: str
    config_hash: str
    shards_total: int
    shards_skipped: int
    shards_committed: int = 0
    rows_in: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    rejects_by_reason: dict = field(default_factory=dict)
    stage_seconds: dict = field(default_factory=dict)  # busy seconds per stage, summed over shards
    seconds: float = 0.0

    def add(self, manifest: dict) -> None:
        self.shards_committed += 1
        self.rows_in += manifest["rows_in"]
        self.rows_written += manifest["rows_written"]
        self.rows_rejected += manifest["rows_rejected"]
        for reason, n in manifest["rejects_by_reason"].items():
            self.rejects_by_reason[reason] = self.rejects_by_reason.get(reason, 0) + n
        for stage, busy in manifest["stage_seconds"].items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + busy

    def line(self) -> str:
        rate = self.rows_in / self.seconds if self.seconds else 0.0
        return (
            f"{self.shards_committed}/{self.shards_total - self.shards_skipped} shards committed "
            f"({self.shards_skipped} already done), {self.rows_written} rows written, "
            f"{self.rows_rejected} rejected, {self.seconds:.1f}s, {rate:.2f} rows/s"
        )

    def stage_lines(self) -> list[str]:
        """Per stage: busy time and rows per busy second (rows in / busy time)."""
        return [
            f"  {stage:<10} busy {busy:8.1f}s  {self.rows_in / busy if busy else 0:8.1f} rows/s"
            for stage, busy in sorted(self.stage_seconds.items(), key=lambda kv: -kv[1])
        ]


def run_facts(config: PipelineConfig, chash: str) -> dict:
    """What every manifest records about the run: versions, config hash, models and prompts."""

    def model(stage: str, name: str, ref: str, prompt: str | None = None, revision: str | None = None) -> dict:
        entry = {"stage": stage, "name": name, "model": ref,
                 "revision": revision or model_revision(resolve_model(ref))}
        return {**entry, "prompt_id": prompt} if prompt else entry

    models = []
    if config.caption.enabled:
        models += [model("caption", c.name, c.model, c.prompt) for c in config.caption.captioners]
    if config.detect.enabled:
        models.append(model("detect", "detector", config.detect.model))
    if config.ocr.enabled:
        from finecap.engines.ocr import ocr_revision

        models.append(model("ocr", "ocr", "PP-OCRv4 (rapidocr-onnxruntime)", revision=ocr_revision()))
    if config.regions.enabled and config.regions.captioner:
        c = config.regions.captioner
        models.append(model("regions", c.name, c.model, c.prompt))
    prompts = {pid: load_prompt(config.prompts_path(), pid).sha256 for pid in config.prompt_ids()}
    return {
        "finecap_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "config_hash": chash,
        "source": config.source.uri,
        "models": models,
        "prompts": prompts,
    }


def run_build(config: PipelineConfig, resume: bool = True) -> BuildSummary:
    started = time.perf_counter()
    output = config.output.uri
    if not output:
        raise ConfigError("output.uri: no output given (set it in the YAML or pass --output)")
    chash = config_hash(config)
    specs = make_source(config).plan()
    done = committed_for_run(output, chash, resume)
    todo = [s for s in specs if s.shard_id not in done]
    summary = BuildSummary(output, chash, len(specs), len(specs) - len(todo))
    log.info("%d shards planned, %d already committed", len(specs), summary.shards_skipped)
    if todo:
        facts = run_facts(config, chash)
        compression = None if config.output.compression == "none" else config.output.compression
        with ray_session(config):
            _drive(config, todo, chash, facts, compression, summary, started)
    summary.seconds = time.perf_counter() - started
    return summary


def _drive(config, todo, chash, facts, compression, summary: BuildSummary, started: float) -> None:
    progress = {s.shard_id: ShardProgress(s.shard_id, s.num_rows) for s in todo}
    pending: list[Future] = []
    last_report = time.monotonic()
    dataset = build_dataset(config, todo, chash)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="commit") as pool:
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for piece in batch.to_pylist():
                shard = progress[piece["shard"]]
                shard.add(piece)
                if shard.complete and shard.shard_id in progress:
                    del progress[shard.shard_id]
                    pending.append(pool.submit(commit_shard, config.output.uri, shard, facts, compression))
            pending = _collect(pending, summary)
            if time.monotonic() - last_report >= config.run.progress_interval_s:
                summary.seconds = time.perf_counter() - started
                print(f"progress: {summary.line()}", file=sys.stderr, flush=True)
                last_report = time.monotonic()
        for future in pending:
            summary.add(future.result())
    storage.remove(storage.join(config.output.uri, "_staging"), recursive=True)
    if progress:
        missing = ", ".join(sorted(progress)[:5])
        raise RuntimeError(f"the pipeline ended before these shards were complete: {missing}")


def _collect(pending: list[Future], summary: BuildSummary) -> list[Future]:
    still = []
    for future in pending:
        if future.done():
            summary.add(future.result())
        else:
            still.append(future)
    return still
