"""Apply duplicate decisions to one committed shard: losers move from data to rejects.

The rewrite is a new version of the shard, written by the shard writer (finecap/dataset/writer.py):
new data and rejects files under fresh names, then the manifest (which records the dedup run it
reflects), then the old files are deleted. A kill at any point leaves the old version whole and
committed, or the new one: never a loser in both files or in neither. It is idempotent: a shard
whose manifest names this run is done; any other is rebuilt from its committed version and the
decisions, so a rerun after a crash ends in the same rows and counts every row exactly once. The
files a killed rewrite left are orphans, deleted by the next run (`remove_orphans`).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from finecap.dataset import writer
from finecap.dataset.reader import CommittedShard, read_data, read_rejects, relative_file
from finecap.dedup.decide import detail
from finecap.errors import UserError
from finecap.schema import conform, load_schema

STAGE = "dedup"


class DedupError(UserError, RuntimeError):
    """The output is not in a state dedup can work on (incomplete build, missing files)."""


def apply_to_shard(output: str, shard_id: str, decisions: dict[str, dict], run_id: str,
                   compression: str | None) -> int:
    """Move `decisions`' losers of this shard to its rejects; return how many rows it removed."""
    manifest = writer.read_manifest(output, shard_id)
    if manifest is None:
        raise DedupError(f"{shard_id} is not committed under {output}: rebuild it (finecap build) before dedup")
    if manifest.get("dedup", {}).get("run") == run_id:
        return manifest["dedup"]["removed"]
    schema = load_schema()
    data, rejects = _read(output, shard_id, manifest)
    losers = pa.array(sorted(decisions), pa.string())
    in_data = pc.is_in(data.column("key"), value_set=losers)
    ours = pc.and_(pc.equal(rejects.column("stage"), STAGE), pc.is_in(rejects.column("key"), value_set=losers))
    known = {r["key"]: r for r in rejects.filter(ours).select(["key", "url", "source"]).to_pylist()}
    known.update({r["key"]: r for r in data.filter(in_data).select(["key", "url", "source"]).to_pylist()})
    unknown = sorted(set(decisions) - set(known))
    if unknown:
        raise DedupError(f"{shard_id}: decided keys not found in its data or rejects: {unknown[:5]}")
    moved = pa.Table.from_pylist(
        [
            {"key": key, "url": known[key]["url"], "source": known[key]["source"], "shard": shard_id,
             "stage": STAGE, "reason": decisions[key]["reason"], "detail": detail(decisions[key])}
            for key in sorted(decisions)
        ],
        schema=schema.rejects_arrow,
    )
    kept = conform(data.filter(pc.invert(in_data)), schema.arrow)
    new_rejects = pa.concat_tables([conform(rejects.filter(pc.invert(ours)), schema.rejects_arrow), moved])
    writer.write_shard(output, shard_id, kept, new_rejects, {**manifest, "dedup": {"run": run_id, "removed": moved.num_rows}},
                       compression, previous=manifest)
    return moved.num_rows


def _read(output: str, shard_id: str, manifest: dict) -> tuple[pa.Table, pa.Table]:
    """The committed version's data and rejects, as the manifest names them."""
    shard = CommittedShard(shard_id, manifest, *(writer.file_uri(output, relative_file(manifest, kind))
                                                 for kind in writer.KINDS))
    try:
        return read_data(shard), read_rejects(shard)
    except FileNotFoundError as exc:
        raise DedupError(f"{exc.filename or shard.data_uri} is missing: rebuild the shard (finecap build) "
                         "before dedup") from None
