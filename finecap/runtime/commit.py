"""Shard commit: the driver's side of writing a shard, through the one shard writer.

The write order and file names are the shard writer's (finecap/dataset/writer.py): a version's
files are written whole under names no committed manifest uses, then the manifest (the commit
marker that resume and validation trust), then the previous version's files are deleted.

Exactly-once: a shard is committed from the first complete report of its rows. A shard that
arrived in one batch was written by its worker as final files (a `final` piece); the commit checks
their counts and writes the manifest. Any other shard's staged pieces are merged by key, first
piece wins, so a row staged twice by a retried task is written once. A shard reads only pieces
its own run staged (`_staging/RUN/SHARD/`), and a piece reported after its shard committed is
dropped (`route_piece`): its files, never named by a manifest, are orphans the next build's
`remove_orphans` (or the run's staging cleanup) deletes.

What stages count per row (`_counts_NAME` working columns, e.g. `region_caption_failures`) comes
in the piece reports per key and is summed over the rows the shard writes, each key once, into
the manifest's NAME; the data files never hold it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from finecap import storage
from finecap.dataset import writer
from finecap.dataset.layout import committed_manifests, data_uri, manifest_uri, rejects_uri  # noqa: F401 (re-exported)
from finecap.schema import load_schema
from finecap.stages.write import ADHOC_RUN, STAGING, read_piece, staging_dir, where

log = logging.getLogger(__name__)


class CommitError(RuntimeError):
    """A shard's pieces do not add up; nothing was committed for it."""


@dataclass
class ShardProgress:
    """What the driver has heard about one shard so far."""

    shard_id: str
    rows_in: int
    run_id: str = ADHOC_RUN  # the staging id of the run that owns this shard's pieces
    keys: set = field(default_factory=set)
    pieces: list = field(default_factory=list)  # piece rows (dicts) in arrival order
    seconds: Counter = field(default_factory=Counter)
    # {NAME: Counter(reason: n)} over the rows the commit writes (each key once): the manifest's NAME
    counts: dict = field(default_factory=dict)
    carried: dict = field(default_factory=dict)  # {NAME: {reason: n}} of stages a rebuild keeps

    def add(self, piece: dict) -> None:
        if piece.get("final"):
            self._add_final(piece)
            return
        ours = f"{STAGING}/{self.run_id}/{self.shard_id}/"
        if not all(ours in piece[name].replace("\\", "/") for name in ("data_file", "rejects_file")):
            log.warning("%s: ignoring a piece staged outside this run's folder: %s", self.shard_id, piece["data_file"])
            return
        new_keys = set(piece["keys"]) - self.keys
        if not new_keys:
            return  # a duplicate report of rows already staged: ignore the whole piece
        self.keys |= new_keys
        self.pieces.append(piece)
        self.seconds.update(json.loads(piece["stage_seconds"]))
        self._count(piece, new_keys)  # `_merge` keeps the first piece's row of a key, as here

    def _add_final(self, piece: dict) -> None:
        """A worker wrote the whole shard: its report replaces any pieces staged so far."""
        if self.complete:
            return  # the shard is already whole: the first complete report wins
        if piece.get("run") != self.run_id or len(set(piece["keys"])) < self.rows_in:
            log.warning("%s: ignoring a final piece of another run or not the whole shard: %s", self.shard_id,
                        piece["data_file"])
            return
        self.keys = set(piece["keys"])
        self.pieces = [piece]
        self.seconds = Counter(json.loads(piece["stage_seconds"]))
        self.counts = {}
        self._count(piece, self.keys)

    def all_counts(self) -> dict[str, Counter]:
        """This run's counts plus those carried over from the committed manifest."""
        total = {name: Counter(c) for name, c in self.counts.items()}
        for name, reasons in self.carried.items():
            total.setdefault(name, Counter()).update(reasons)
        return total

    def _count(self, piece: dict, keys: set) -> None:
        for name, per_key in json.loads(piece.get("counts") or "{}").items():
            total = self.counts.setdefault(name, Counter())
            for key, reasons in per_key.items():
                if key in keys:
                    total.update(reasons)

    @property
    def final_piece(self) -> dict | None:
        """The worker-written report the shard commits from, if it arrived whole."""
        if len(self.pieces) == 1 and self.pieces[0].get("final"):
            return self.pieces[0]
        return None

    @property
    def complete(self) -> bool:
        return len(self.keys) >= self.rows_in


def route_piece(progress: dict[str, ShardProgress], piece: dict) -> ShardProgress | None:
    """Add a reported piece to its shard; return the shard (removed from `progress`) once complete.

    A piece of a shard not in `progress` is ignored: its shard already committed (a retried task
    reported rows again after the first report completed it) or this run never planned it.
    """
    shard = progress.get(piece["shard"])
    if shard is None:
        return None
    shard.add(piece)
    if not shard.complete:
        return None
    del progress[shard.shard_id]
    return shard


def commit_shard(output: str, progress: ShardProgress, run_facts: dict, compression: str | None) -> dict:
    """Commit one complete shard through the shard writer; return the manifest written.

    A shard written whole by its worker (a `final` piece) has its files checked against the
    report (footers only) and gets its manifest; any other has its staged pieces merged and
    written. Either way the previous version's files are deleted after the new manifest.
    """
    previous = writer.read_manifest(output, progress.shard_id)
    manifest = _manifest_facts(progress, run_facts)
    final = progress.final_piece
    try:
        if final is not None:
            manifest = _commit_final(output, final, manifest, previous)
        else:
            manifest = _commit_staged(output, progress, manifest, compression, previous)
    except writer.ShardWriteError as exc:
        raise CommitError(str(exc)) from None
    storage.remove(staging_dir(output, progress.shard_id, progress.run_id), recursive=True)
    return manifest


def _manifest_facts(progress: ShardProgress, run_facts: dict) -> dict:
    """Everything in the manifest but the files and their counts (the writer fills those in)."""
    return {
        "shard": progress.shard_id,
        "rows_in": progress.rows_in,
        "stage_seconds": {k: round(v, 4) for k, v in sorted(progress.seconds.items())},
        "stage_rows_per_s": {
            k: round(progress.rows_in / v, 3) for k, v in sorted(progress.seconds.items()) if v > 0
        },
        "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **{name: dict(sorted(c.items())) for name, c in sorted(progress.all_counts().items())},
        **run_facts,
    }


def _commit_staged(output: str, progress: ShardProgress, manifest: dict, compression: str | None,
                   previous: dict | None) -> dict:
    schema = load_schema()
    data, rejects = _merge(progress)
    if data.num_rows + rejects.num_rows != progress.rows_in:
        raise CommitError(
            f"{progress.shard_id}: {progress.rows_in} rows in but {data.num_rows} written + "
            f"{rejects.num_rows} rejected"
        )
    data = data.cast(schema.arrow) if data.num_rows else schema.arrow.empty_table()
    rejects = rejects.cast(schema.rejects_arrow) if rejects.num_rows else schema.rejects_arrow.empty_table()
    return writer.write_shard(output, progress.shard_id, data, rejects, manifest, compression, previous)


def _commit_final(output: str, piece: dict, manifest: dict, previous: dict | None) -> dict:
    """The manifest of files the worker already wrote: only the report and the footers are read."""
    shard = manifest["shard"]
    files = {kind: _relative(output, shard, kind, piece[f"{kind}_file"]) for kind in writer.KINDS}
    manifest = {**manifest, "rows_written": piece["rows_written"], "rows_rejected": piece["rows_rejected"],
                "rejects_by_reason": json.loads(piece["rejects_by_reason"]), "files": files}
    writer.check_accounting(manifest)
    writer.check_files(output, manifest)
    return writer.commit_files(output, manifest, previous)


def _relative(output: str, shard: str, kind: str, uri: str) -> str:
    """The manifest's name for a file a worker reported, refusing one outside the shard's names."""
    relative = f"{kind}/{uri.replace(chr(92), '/').rsplit('/', 1)[-1]}"
    if not writer.is_shard_file(shard, kind, relative) or writer.file_uri(output, relative) != uri:
        raise CommitError(f"{shard}: the reported {kind} file {uri} is not one of the shard's files in {output}")
    return relative


def _merge(progress: ShardProgress) -> tuple[pa.Table, pa.Table]:
    """Concatenate the reported pieces, keeping each key's first occurrence (the writer sorts)."""
    claimed: set[str] = set()
    data_parts, reject_parts = [], []
    for piece in progress.pieces:
        for uri, parts in ((piece["data_file"], data_parts), (piece["rejects_file"], reject_parts)):
            table = read_piece(uri)
            keys = table.column("key").to_pylist()
            keep = pa.array([k not in claimed for k in keys], pa.bool_())
            parts.append(where(table, keep))
        claimed.update(piece["keys"])
    return _concat(data_parts), _concat(reject_parts)


def _concat(parts: list[pa.Table]) -> pa.Table:
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return pa.table({"key": pa.array([], pa.string())})
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)
