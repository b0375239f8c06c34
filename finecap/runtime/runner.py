"""The build driver: plan shards, skip committed ones, run the graph, commit shards as they finish."""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from finecap import __version__, storage
from finecap.config import ConfigError, PipelineConfig
from finecap.dataset.writer import remove_orphans
from finecap.prompts import load_prompt
from finecap.redact import public_uri
from finecap.runtime.balanced_build import run_balanced
from finecap.runtime.build_plan import FROM_KIND, BuildPlan, complete_version, plan_build, source_shard_ids
from finecap.runtime.commit import ShardProgress, commit_shard, route_piece
from finecap.runtime.graph import build_dataset
from finecap.runtime.isolation import crash_journal, run_failure
from finecap.runtime.lock import output_lock
from finecap.runtime.ray_session import ray_session, reap_leftover_sessions
from finecap.runtime.resume import check_ownership, clear_stale_staging, committed_for_run, mark_output
from finecap.schema import SCHEMA_VERSION
from finecap.sources import make_source, resolve_source
from finecap.stages import stage_models
from finecap.stages.fingerprints import StagePrint, fingerprints_of, pipeline_prints, prints_hash
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


def run_facts(config: PipelineConfig, prints: dict[str, StagePrint] | None = None, version: str | None = None) -> dict:
    """What every manifest records about the run: versions, fingerprints, models and prompts."""
    prints = pipeline_prints(config) if prints is None else prints
    prompts = {pid: load_prompt(config.prompts_path(), pid).sha256 for pid in config.prompt_ids()}
    return {
        "finecap_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "config_hash": prints_hash(prints),
        "version": version,
        "fingerprints": fingerprints_of(prints),
        "source": public_uri(config.source.uri),  # never a presigned query string or a password
        "models": stage_models(config),
        "prompts": prompts,
    }


def run_build(config: PipelineConfig, resume: bool = True) -> BuildSummary:
    started = time.perf_counter()
    output = config.output.uri
    if not output:
        raise ConfigError("output.uri: no output given (set it in the YAML or pass --output)")
    resolve_source(config)  # source.kind auto -> what the input is (in place); an explicit kind is checked
    if config.source.kind == FROM_KIND and public_uri(config.source.uri) == public_uri(output):
        raise ConfigError("source.uri: a build from an earlier output writes a new output; to rebuild "
                          f"{output} in place, rerun finecap build on it without --from")
    check_ownership(output)  # before any work, and before the lock: never write into a folder not ours
    # A source that cannot be read fails here, before the lock (a build from an earlier output
    # plans from that output's manifests instead).
    specs = None if config.source.kind == FROM_KIND else make_source(config).plan()
    with output_lock(output, config.run, "build") as lock:
        if config.balance.enabled:  # two passes, one hold of the lock (runtime/balanced_build.py)
            def one_pass(pass_config: PipelineConfig, pass_resume: bool) -> BuildSummary:
                return _build_locked(pass_config, pass_resume, specs, lock, time.perf_counter())

            shard_ids = [spec.shard_id for spec in specs] if specs is not None else source_shard_ids(config)
            summary = run_balanced(config, resume, one_pass, lock.check, shard_ids)
            summary.seconds = time.perf_counter() - started
            return summary
        return _build_locked(config, resume, specs, lock, started)


def _build_locked(config: PipelineConfig, resume: bool, specs, lock, started: float) -> BuildSummary:
    output = config.output.uri
    own = committed_for_run(output, resume)
    mark_output(output)
    clear_stale_staging(output, lock.owner)  # pieces of killed runs: we hold the lock, they are gone
    remove_orphans(output)  # shard files no manifest names (a killed commit or rewrite left them)
    plan = plan_build(config, own, specs)
    config = plan.config
    for line in plan.lines:
        print(line, flush=True)
    if not config.run.ray_address:
        reap_leftover_sessions(config)
    summary = BuildSummary(output, plan.config_hash, len(plan.specs), len(plan.specs) - len(plan.todo))
    log.info("%d shards planned, %d already committed", len(plan.specs), summary.shards_skipped)
    if plan.todo:
        facts = run_facts(config, plan.prints, plan.version["version"])
        compression = None if config.output.compression == "none" else config.output.compression
        with ray_session(config), crash_journal(config) as journal_root:
            try:
                _drive(config, plan, facts, compression, summary, started, journal_root, lock)
            except Exception as exc:
                failure = run_failure(exc)
                if failure is None:
                    raise
                raise failure from exc
    complete_version(output, plan.version)
    summary.seconds = time.perf_counter() - started
    return summary


def _drive(config, plan: BuildPlan, facts, compression, summary: BuildSummary, started: float,
           journal_root: str, lock=None) -> None:
    run_id = lock.owner if lock else ADHOC_RUN
    kept = plan.rebuild.shards if plan.rebuild else {}
    progress = {s.shard_id: ShardProgress(s.shard_id, s.num_rows, run_id,
                                          carried=kept[s.shard_id].carried if s.shard_id in kept else {})
                for s in plan.todo}
    pending: list[Future] = []
    last_report = time.monotonic()
    provenance = {"fingerprints": plan.fingerprints, "version": plan.version["version"]}
    dataset = build_dataset(config, plan.todo, plan.config_hash, journal_root, run_id, plan.rebuild, provenance)
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
    remove_orphans(config.output.uri)  # files of retried tasks' duplicate reports: no commit is in flight now
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
