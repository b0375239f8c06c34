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
from finecap.redact import public_uri
from finecap.runtime.commit import ShardProgress, commit_shard, route_piece
from finecap.runtime.graph import build_dataset
from finecap.runtime.isolation import crash_journal, run_failure
from finecap.runtime.lock import output_lock
from finecap.runtime.ray_session import ray_session, reap_leftover_sessions
from finecap.runtime.resume import check_ownership, clear_stale_staging, committed_for_run, mark_output
from finecap.schema import SCHEMA_VERSION
from finecap.sources import make_source
from finecap.stages import stage_models
from finecap.stages.write import ADHOC_RUN, run_staging_dir

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

    models = []
    for entry in stage_models(config):
        if entry["stage"] == "ocr":
            from finecap.engines.ocr import ocr_revision

            revision = ocr_revision()
        else:
            revision = model_revision(resolve_model(entry["model"]))
        prompt = entry.pop("prompt_id", None)
        models.append({**entry, "revision": revision, **({"prompt_id": prompt} if prompt else {})})
    prompts = {pid: load_prompt(config.prompts_path(), pid).sha256 for pid in config.prompt_ids()}
    return {
        "finecap_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "config_hash": chash,
        "source": public_uri(config.source.uri),  # never a presigned query string or a password
        "models": models,
        "prompts": prompts,
    }


def run_build(config: PipelineConfig, resume: bool = True) -> BuildSummary:
    started = time.perf_counter()
    output = config.output.uri
    if not output:
        raise ConfigError("output.uri: no output given (set it in the YAML or pass --output)")
    chash = config_hash(config)
    check_ownership(output)  # before any work, and before the lock: never write into a folder not ours
    specs = make_source(config).plan()
    with output_lock(output, config.run, "build") as lock:
        return _build_locked(config, resume, chash, specs, lock, started)


def _build_locked(config: PipelineConfig, resume: bool, chash: str, specs: list, lock, started: float) -> BuildSummary:
    output = config.output.uri
    done = committed_for_run(output, chash, resume)
    mark_output(output)
    clear_stale_staging(output, lock.owner)  # pieces of killed runs: we hold the lock, they are gone
    todo = [s for s in specs if s.shard_id not in done]
    if not config.run.ray_address:
        reap_leftover_sessions(config)
    summary = BuildSummary(output, chash, len(specs), len(specs) - len(todo))
    log.info("%d shards planned, %d already committed", len(specs), summary.shards_skipped)
    if todo:
        facts = run_facts(config, chash)
        compression = None if config.output.compression == "none" else config.output.compression
        with ray_session(config), crash_journal(config) as journal_root:
            try:
                _drive(config, todo, chash, facts, compression, summary, started, journal_root, lock)
            except Exception as exc:
                failure = run_failure(exc)
                if failure is None:
                    raise
                raise failure from exc
    summary.seconds = time.perf_counter() - started
    return summary


def _drive(config, todo, chash, facts, compression, summary: BuildSummary, started: float,
           journal_root: str, lock=None) -> None:
    run_id = lock.owner if lock else ADHOC_RUN
    progress = {s.shard_id: ShardProgress(s.shard_id, s.num_rows, run_id) for s in todo}
    pending: list[Future] = []
    last_report = time.monotonic()
    dataset = build_dataset(config, todo, chash, journal_root, run_id)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="commit") as pool:
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for piece in batch.to_pylist():
                shard = route_piece(progress, piece)
                if shard is not None:
                    if lock:
                        lock.check()  # never commit once another driver may own the output
                    pending.append(pool.submit(commit_shard, config.output.uri, shard, facts, compression))
            pending = _collect(pending, summary)
            if time.monotonic() - last_report >= config.run.progress_interval_s:
                summary.seconds = time.perf_counter() - started
                print(f"progress: {summary.line()}", file=sys.stderr, flush=True)
                last_report = time.monotonic()
        for future in pending:
            summary.add(future.result())
    storage.remove(run_staging_dir(config.output.uri, run_id), recursive=True)  # only this run's
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
