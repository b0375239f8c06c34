"""The dedup pass over a whole committed output, as a partitioned map / reduce / apply.

    map      per group of shards: read (key, sha256, phash, size) from the data files, write each
             row to partition hash(phash) % P                           -> _dedup/RUN/sig/p-*/
    reduce 1 per phash partition: exact and identical-hash losers; one representative per phash,
             written once per block table to partition hash(bucket) % P -> dec/, cand/
    reduce 2 per bucket partition: near-duplicate pairs inside each bucket -> dec/
    apply    per shard partition: one decision per loser, rewrite the shards that lose rows

Every step reads and writes whole files under OUT/_dedup/RUN/ (any fsspec URI), so any step can
be rerun; `state.json` records the run (a fingerprint of the committed shards) and its phase.
Decisions are made once per run and kept until applied, so resuming after a crash never mixes
decisions from two different views of the data. P = ceil(rows / dedup.rows_per_partition);
with P > 1 or a Ray cluster the steps run as Ray tasks, otherwise in this process.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from finecap import storage
from finecap.config import PipelineConfig
from finecap.dataset import writer
from finecap.dataset.layout import committed_manifests
from finecap.dataset.reader import relative_file
from finecap.dedup.decide import (
    CANDIDATES,
    DECISIONS,
    EXACT,
    SIGNATURES,
    candidates,
    decide_identical,
    near_pairs,
    resolve,
)
from finecap.dedup.hashes import stable_partition
from finecap.dedup.shards import DedupError, apply_to_shard
from finecap.runtime.lock import LockHeld, OutputLock, output_lock

DEDUP_DIR = "_dedup"


@dataclass(frozen=True)
class Job:
    """What every step needs; small and picklable, shipped to Ray tasks."""

    output: str
    run_id: str
    partitions: int
    exact: bool
    near: bool
    threshold: int
    blocks: int
    compression: str | None

    @property
    def work(self) -> str:
        return storage.join(self.output, DEDUP_DIR, self.run_id)

    def part(self, kind: str, partition: int) -> str:
        return storage.join(self.work, kind, f"p-{partition:05d}")


@dataclass
class DedupSummary:
    output: str
    shards: int = 0
    rows: int = 0
    exact: int = 0
    near: int = 0
    shards_rewritten: int = 0
    already_done: bool = False
    seconds: float = 0.0
    by_shard: dict = field(default_factory=dict)

    def line(self) -> str:
        if self.already_done:
            return f"dedup: already applied ({self.exact} exact, {self.near} near duplicates removed)"
        return (
            f"dedup: {self.exact} exact and {self.near} near duplicates moved to rejects "
            f"({self.shards_rewritten} of {self.shards} shards rewritten, {self.rows} rows checked), "
            f"{self.seconds:.1f}s"
        )


def run_dedup(config: PipelineConfig, planned_shards: list[str] | None = None,
              config_hash: str | None = None) -> DedupSummary:
    """Remove duplicates across the committed output of `config` (every planned shard committed),
    holding the output's lock (runtime/lock.py) as a build does: it rewrites committed shards.

    `config_hash` (the build's, from finecap/stages/fingerprints.py: the caller computes it, so
    this pass never imports the pipeline) must be every shard's; None only asks that all shards
    share one, i.e. that no rebuild is half done."""
    try:
        with output_lock(config.output.uri, config.run, "dedup") as lock:
            return _run_locked(config, planned_shards, lock, config_hash)
    except LockHeld as exc:
        raise DedupError(str(exc)) from None


def _run_locked(config: PipelineConfig, planned_shards: list[str] | None, lock: OutputLock,
                config_hash: str | None) -> DedupSummary:
    started = time.perf_counter()
    cfg, output = config.dedup, config.output.uri
    summary = DedupSummary(output)
    manifests = committed_manifests(output)
    _check_complete(manifests, planned_shards, config_hash)
    writer.remove_orphans(output, manifests)  # what a killed rewrite (or build) left; we hold the lock
    run_id = _fingerprint(manifests)
    state_uri = storage.join(output, DEDUP_DIR, "state.json")
    state = json.loads(storage.read_bytes(state_uri)) if storage.exists(state_uri) else {}
    if state.get("run") == run_id and state.get("phase") == "applied":
        _remove_runs(output)
        summary.exact, summary.near, summary.already_done = state["exact"], state["near"], True
        return summary
    rows = sum(m["rows_written"] for m in manifests.values())
    resumed = state.get("run") == run_id and state.get("phase") == "decided"
    partitions = state["partitions"] if resumed else max(1, math.ceil(rows / cfg.rows_per_partition))
    job = Job(output, run_id, partitions, cfg.exact, cfg.near, cfg.near_threshold, cfg.near_blocks,
              None if config.output.compression == "none" else config.output.compression)
    summary.shards, summary.rows = len(manifests), rows
    with _executor(config, partitions) as run_all:
        if not resumed:
            _remove_runs(output)
            groups = _shard_groups(sorted(manifests), partitions)
            run_all(map_signatures, [(job, i, group) for i, group in enumerate(groups)])
            run_all(reduce_identical, [(job, p) for p in range(partitions)])
            if job.near:
                run_all(reduce_near, [(job, p) for p in range(partitions)])
            _write_state(state_uri, {"run": run_id, "phase": "decided", "partitions": partitions})
        elif not storage.exists(job.work):
            raise DedupError(f"{job.work} is missing but {state_uri} says its decisions exist; "
                             "rebuild with --no-resume")
        lock.check()  # the rewrite below must not race a driver that took the output over
        results = run_all(apply_partition, [(job, p) for p in range(partitions)])
    for result in results:
        summary.exact += result["exact"]
        summary.near += result["near"]
        summary.by_shard.update(result["removed"])
    summary.shards_rewritten = sum(1 for n in summary.by_shard.values() if n)
    _write_state(state_uri, {"run": run_id, "phase": "applied", "partitions": partitions,
                             "exact": summary.exact, "near": summary.near, "rows": rows})
    _remove_runs(output)
    summary.seconds = time.perf_counter() - started
    return summary


def _check_complete(manifests: dict, planned: list[str] | None, chash: str | None) -> None:
    if not manifests:
        raise DedupError("no committed shards to deduplicate")
    hashes = {m["config_hash"] for m in manifests.values()}
    if len(hashes) > 1 or (chash is not None and hashes != {chash}):  # another config, or a rebuild half done
        wanted = f"this config is {chash}" if chash else "they must agree"
        raise DedupError(f"the output was built with config {sorted(hashes)}, {wanted}: "
                         "finish the build with this config (rerun finecap build) first")
    missing = sorted(set(planned or ()) - set(manifests))
    if missing:
        raise DedupError(f"{len(missing)} planned shards are not committed yet ({', '.join(missing[:3])}, ...): "
                         "finish the build first")


def _fingerprint(manifests: dict) -> str:
    """Identifies the set of committed shards (stable while dedup rewrites them)."""
    facts = sorted((s, m["rows_in"], m["config_hash"], m.get("committed_at")) for s, m in manifests.items())
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]


def _shard_groups(shards: list[str], partitions: int) -> list[list[str]]:
    size = math.ceil(len(shards) / min(partitions, len(shards)))
    return [shards[i : i + size] for i in range(0, len(shards), size)]


@contextlib.contextmanager
def _executor(config: PipelineConfig, partitions: int):
    """Run a step's tasks here, or as Ray tasks when the work is partitioned or a cluster is set."""
    if partitions == 1 and not config.run.ray_address:
        yield lambda fn, args: [fn(*a) for a in args]
        return
    import ray

    from finecap.runtime.ray_session import ray_session

    with ray_session(config):
        def run_all(fn, args):
            remote = ray.remote(num_cpus=1, max_retries=3)(fn)
            return ray.get([remote.remote(*a) for a in args])

        yield run_all


def _write_state(uri: str, state: dict) -> None:
    storage.write_bytes(uri, json.dumps({**state, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode())


def _remove_runs(output: str) -> None:
    """Delete the work folders of earlier or finished runs (state.json stays)."""
    fs, path = storage.filesystem(storage.join(output, DEDUP_DIR))
    if fs.exists(path):
        for entry in fs.ls(path, detail=True):
            if entry["type"] == "directory":
                fs.rm(entry["name"], recursive=True)


# --- steps (module-level functions: Ray ships them to workers) ---

def map_signatures(job: Job, index: int, shards: list[str]) -> None:
    parts = []
    for shard in shards:
        manifest = writer.read_manifest(job.output, shard)
        uri = writer.file_uri(job.output, relative_file(manifest or {"shard": shard}, "data"))
        fs, path = storage.filesystem(uri)
        if manifest is None or not fs.exists(path):
            raise DedupError(f"{uri} is missing: rebuild the shard before dedup")
        with fs.open(path, "rb") as f:
            table = pq.ParquetFile(f).read(columns=["key", "sha256", "phash", "width", "height"])
        pixels = pc.multiply(table.column("width").cast(pa.int64()), table.column("height").cast(pa.int64()))
        parts.append(pa.table({"key": table.column("key"), "shard": pa.array([shard] * table.num_rows, pa.string()),
                               "sha256": table.column("sha256"),
                               "phash": pc.coalesce(table.column("phash"), table.column("sha256")),
                               "pixels": pixels}, schema=SIGNATURES))
    sigs = pa.concat_tables(parts) if parts else SIGNATURES.empty_table()
    _scatter(job, "sig", f"m-{index:05d}", sigs, sigs.column("phash").to_pylist())


def reduce_identical(job: Job, partition: int) -> None:
    sigs = _gather(job.part("sig", partition), SIGNATURES)
    losers, reps = decide_identical(sigs, job.exact, job.near)
    _scatter(job, "dec", f"a-{partition:05d}", losers, losers.column("shard").to_pylist())
    if job.near:
        cands = candidates(reps, job.blocks, job.threshold)
        buckets = [f"{t}:{v}" for t, v in zip(cands.column("table").to_pylist(), cands.column("value").to_pylist(),
                                              strict=True)]
        _scatter(job, "cand", f"a-{partition:05d}", cands, buckets)


def reduce_near(job: Job, partition: int) -> None:
    pairs = near_pairs(_gather(job.part("cand", partition), CANDIDATES), job.threshold)
    _scatter(job, "dec", f"b-{partition:05d}", pairs, pairs.column("shard").to_pylist())


def apply_partition(job: Job, partition: int) -> dict:
    decisions = resolve(_gather(job.part("dec", partition), DECISIONS))
    by_shard: dict[str, dict] = defaultdict(dict)
    for key, decision in decisions.items():
        by_shard[decision["shard"]][key] = decision
    removed = {shard: apply_to_shard(job.output, shard, losers, job.run_id, job.compression)
               for shard, losers in sorted(by_shard.items())}
    return {"exact": sum(d["reason"] == EXACT for d in decisions.values()),
            "near": sum(d["reason"] != EXACT for d in decisions.values()), "removed": removed}


def _scatter(job: Job, kind: str, name: str, table: pa.Table, by: list[str]) -> None:
    """Write `table`'s rows to partition files `kind/p-*/name.parquet` (empty partitions skipped)."""
    if not table.num_rows:
        return
    targets = stable_partition(by, job.partitions)
    for partition in sorted(set(targets.tolist())):
        rows = table.filter(pa.array(targets == partition))
        buffer = io.BytesIO()
        pq.write_table(rows, buffer)
        storage.write_bytes(storage.join(job.part(kind, partition), f"{name}.parquet"), buffer.getvalue())


def _gather(folder: str, schema: pa.Schema) -> pa.Table:
    tables = []
    for uri in storage.list_files(folder, ".parquet"):
        with fsspec.open(uri, "rb") as f:
            tables.append(pq.read_table(f).cast(schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()
