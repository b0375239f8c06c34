"""Incremental rebuilds: which shards and stages a build recomputes, and the rows it reads back.

A committed shard whose manifest has this build's fingerprints is done. Any other committed
shard is rebuilt from its committed files (the output's own, or with `--from`, an earlier
output's), never fetched or decoded again unless a stage that needs the pixels runs:
- stages whose fingerprint changed run again on the kept rows (after `Stage.clear` removed
  their old output), and so do the transient stages feeding them (prepare's model copy, the
  phrases); every other column is read back as committed, image bytes included;
- rows rejected by an unchanged stage stay rejected as they are; rows rejected by a changed
  (or now disabled) stage are decided again from the source, through every stage, since the
  output never kept their bytes;
- a changed source makes the whole shard new.
Kept rows carry `_rerun` = ",stage,...," and new rows "*" (stages/base.py gates on it).
Until a shard's new version is committed its old files stay as they were (dataset/writer.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from finecap import storage
from finecap.dataset.reader import read_columns, relative_file
from finecap.stages import STAGES_BY_NAME
from finecap.stages.base import RERUN
from finecap.stages.fingerprints import SOURCE, StagePrint, changed_settings, fingerprints_of

# Reject stages that are not pipeline stages: the source could not read the row, or the dedup
# pass removed it. They are decided again only when the source changes (a new shard).
READ, DEDUP = "read", "dedup"
FRESH = "*"


@dataclass(frozen=True)
class ShardPlan:
    """How one committed shard becomes its new version."""

    shard_id: str
    data_uri: str  # the committed files read back
    rejects_uri: str
    runs: tuple[str, ...]  # stages that run again on the kept rows
    clears: tuple[str, ...]  # stages whose old output is removed from the kept rows first
    redecide: tuple[str, ...]  # reject stages whose rows go through the whole pipeline again
    redecided_rows: int = 0  # how many, from the manifest's counts
    # Manifest counts of stages that do not run again: the kept rows' counts, as committed (rows a
    # rerun stage now rejects still count in them: a stage after `regions` rejecting is rare).
    carried: dict = field(default_factory=dict, compare=False)

    def to_row(self) -> dict:
        return {"shard_id": self.shard_id, "data_uri": self.data_uri, "rejects_uri": self.rejects_uri,
                "runs": list(self.runs), "clears": list(self.clears), "redecide": list(self.redecide)}


@dataclass
class RebuildPlan:
    shards: dict[str, ShardPlan] = field(default_factory=dict)  # committed shards rebuilt in place
    new: set[str] = field(default_factory=set)  # shards read from the source, every stage

    @property
    def any_fresh_rows(self) -> bool:
        return bool(self.new) or any(p.redecided_rows for p in self.shards.values())

    def graph_stages(self, names: list[str]) -> list[str]:
        """The stages the graph needs: all when some row is new, else those some shard reruns."""
        if self.any_fresh_rows:
            return names
        runs = {s for p in self.shards.values() for s in p.runs}
        return [n for n in names if n in runs]


def plan_shard(shard_id: str, manifest: dict, base: str, prints: dict[str, StagePrint]) -> ShardPlan | None:
    """The rebuild of one committed shard (None: its source changed, so it is new). With the same
    fingerprints it is a copy: read back and written, no stage runs (a build from an earlier
    output that changed nothing for this shard)."""
    new = fingerprints_of(prints)
    # A shard committed before fingerprints existed: same source (same output, same shard),
    # every stage recomputed from its kept bytes.
    old = manifest.get("fingerprints") or {SOURCE: new[SOURCE]}
    if old.get(SOURCE) != new[SOURCE]:
        return None  # another source: every row is new
    changed = [s for s in new if s != SOURCE and old.get(s) != new[s]]
    removed = [s for s in old if s not in new and s in STAGES_BY_NAME]
    runs = set(changed)
    frontier = list(changed)
    while frontier:  # transient inputs of what runs run too (their output was never kept)
        stage = frontier.pop()
        for name in prints[stage].inputs:
            if name in STAGES_BY_NAME and STAGES_BY_NAME[name].transient and name not in runs:
                runs.add(name)
                frontier.append(name)
    order = [s for s in new if s in runs]
    clears = tuple(s for s in STAGES_BY_NAME if s in set(changed) | set(removed) and not STAGES_BY_NAME[s].transient)
    redecide = tuple(sorted(set(changed) | set(removed)))
    counts = manifest.get("rejects_by_reason", {})
    redecided = sum(n for key, n in counts.items() if key.split("/", 1)[0] in redecide)
    data = storage.join(base, relative_file(manifest, "data"))
    rejects = storage.join(base, relative_file(manifest, "rejects"))
    carried = {name: manifest[name] for stage in STAGES_BY_NAME.values() if stage.name not in runs
               for name in stage.counts if name in manifest}
    return ShardPlan(shard_id, data, rejects, tuple(order), clears, redecide, redecided, carried)


def why(old_stages: dict, prints: dict[str, StagePrint]) -> dict[str, list[str]]:
    """Per stage that recomputes against a version's stage records: what changed."""
    reasons: dict[str, list[str]] = {}
    for name, p in prints.items():
        before = old_stages.get(name)
        if before is None:
            reasons[name] = ["first build" if not old_stages else "enabled"]
        elif before.get("fingerprint") != p.fingerprint:
            settings = [f"{name}.{c}" for c in changed_settings(before.get("settings", {}), p.settings)]
            inputs = [f"{i} changed" for i in p.inputs if i in reasons]
            reasons[name] = settings + inputs or ["fingerprint changed"]
    for name in old_stages:
        if name not in prints:
            reasons[name] = ["disabled"]
    return reasons


# -- the worker side: reading a shard back -------------------------------------------------------

def read_shard(spec, source, plan: RebuildPlan | None) -> pa.Table:
    """One shard's rows for the graph: from the source, or read back for a rebuild."""
    shard = plan.shards.get(spec.shard_id) if plan else None
    if shard is None:
        table = source.read(spec)
        return _with_marks(table, FRESH) if plan is not None else table
    stay, again = kept_rejects(shard, spec.shard_id)
    parts = [kept_rows(shard, spec.shard_id), stay]
    if again:
        parts.append(fresh_rows(source.read(spec), again, spec.shard_id))
    return pa.concat_tables(parts, promote_options="permissive")


def kept_rows(plan: ShardPlan, shard_id: str) -> pa.Table:
    """The shard's committed data rows as pipeline rows, the rerun stages' output cleared."""
    data = read_columns(plan.data_uri)
    image = data.column("image")
    columns = {
        "key": data.column("key"),
        "shard": pa.array([shard_id] * data.num_rows, pa.string()),
        "url": data.column("url"),
        "source": data.column("source"),
        "alt_text": data.column("alt_text"),
        "image_bytes": pc.struct_field(image, "bytes"),  # per chunk: the image bytes are not copied
        "image_path": pc.struct_field(image, "path"),
    }
    for name in ("width", "height", "sha256", "phash", "quality", "captions", "regions", "ocr_document", "signals"):
        if name in data.column_names:
            columns[name] = data.column(name)
    table = pa.table(columns)
    for stage in plan.clears:
        table = STAGES_BY_NAME[stage].clear(table)
    return _with_marks(table, f",{','.join(plan.runs)},")


def kept_rejects(plan: ShardPlan, shard_id: str) -> tuple[pa.Table, list[str]]:
    """Rejects that stay as they are (as pipeline rows) and the keys decided again."""
    rejects = read_columns(plan.rejects_uri)
    again = pc.is_in(rejects.column("stage"), value_set=pa.array(list(plan.redecide), pa.string()))
    stay = rejects.filter(pc.invert(again))
    alt = stay.column("alt_text") if "alt_text" in stay.column_names else pa.nulls(stay.num_rows, pa.string())
    table = pa.table({
        "key": stay.column("key"), "shard": pa.array([shard_id] * stay.num_rows, pa.string()),
        "url": stay.column("url"), "source": stay.column("source"), "alt_text": alt,
        "image_bytes": pa.nulls(stay.num_rows, pa.binary()), "image_path": pa.nulls(stay.num_rows, pa.string()),
        "reject_stage": stay.column("stage"), "reject_reason": stay.column("reason"),
        "reject_detail": stay.column("detail"),
    })
    return _with_marks(table, ","), rejects.filter(again).column("key").to_pylist()


def fresh_rows(source_rows: pa.Table, keys: list[str], shard_id: str) -> pa.Table:
    """The rows decided again, read anew from the source; a key the source no longer has is a
    `read/missing` reject (so the shard's accounting still holds)."""
    wanted = pa.array(keys, pa.string())
    found = source_rows.filter(pc.is_in(source_rows.column("key"), value_set=wanted))
    missing = sorted(set(keys) - set(found.column("key").to_pylist()))
    if missing:
        n = len(missing)
        gone = pa.table({
            "key": pa.array(missing, pa.string()), "shard": pa.array([shard_id] * n, pa.string()),
            "reject_stage": pa.array([READ] * n, pa.string()), "reject_reason": pa.array(["missing"] * n, pa.string()),
            "reject_detail": pa.array(["decided again in a rebuild, but the source no longer has this row"] * n),
        })
        found = pa.concat_tables([found, gone], promote_options="permissive")
    return _with_marks(found, FRESH)


def _with_marks(table: pa.Table, rerun: str) -> pa.Table:
    for name in ("reject_stage", "reject_reason", "reject_detail"):
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    if RERUN in table.column_names:
        table = table.drop_columns([RERUN])
    return table.append_column(RERUN, pa.array([rerun] * table.num_rows, pa.string()))
