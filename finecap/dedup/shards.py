"""Apply duplicate decisions to one committed shard: losers move from data to rejects.

The rewrite follows the commit rules (finecap/runtime/commit.py): files are written whole, the
manifest last, and the manifest records which dedup run it reflects. Rejects are written before
data, so a kill between the two writes leaves every loser in both files (a row counted twice
until the rerun, never a row lost; the manifest still has the old counts, so `finecap validate`
flags the shard); written the other way round, the losers would be in neither file and the
rerun could not find them. It is idempotent: losers are removed from data (a no-op if already
gone) and their `dedup` reject rows are rebuilt from the decisions, so a rerun after a crash at
any point ends in the same files and counts every row exactly once.
"""

from __future__ import annotations

import io
import json
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from finecap import storage
from finecap.dataset.layout import data_uri, manifest_uri, rejects_uri
from finecap.dedup.decide import detail
from finecap.schema import conform, load_schema

STAGE = "dedup"


class DedupError(RuntimeError):
    """The output is not in a state dedup can work on (incomplete build, missing files)."""


def apply_to_shard(output: str, shard_id: str, decisions: dict[str, dict], run_id: str,
                   compression: str | None) -> int:
    """Move `decisions`' losers of this shard to its rejects; return how many rows it removed."""
    manifest = json.loads(storage.read_bytes(manifest_uri(output, shard_id)))
    if manifest.get("dedup", {}).get("run") == run_id:
        return manifest["dedup"]["removed"]
    schema = load_schema()
    data = _read(data_uri(output, shard_id))
    rejects = _read(rejects_uri(output, shard_id))
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
    kept = data.filter(pc.invert(in_data))
    new_rejects = pa.concat_tables([conform(rejects.filter(pc.invert(ours)), schema.rejects_arrow), moved])
    new_rejects = new_rejects.take(pc.sort_indices(new_rejects, [("key", "ascending")]))
    _write(rejects_uri(output, shard_id), new_rejects, compression)  # first: see the module docstring
    _write(data_uri(output, shard_id), conform(kept, schema.arrow), compression)
    reasons = Counter(f"{s}/{r}" for s, r in zip(new_rejects.column("stage").to_pylist(),
                                                   new_rejects.column("reason").to_pylist(), strict=True))
    manifest.update(
        rows_written=kept.num_rows,
        rows_rejected=new_rejects.num_rows,
        rejects_by_reason=dict(sorted(reasons.items())),
        dedup={"run": run_id, "removed": moved.num_rows},
    )
    storage.write_bytes(manifest_uri(output, shard_id), json.dumps(manifest, indent=2).encode())
    return moved.num_rows


def _read(uri: str) -> pa.Table:
    try:
        return pq.read_table(io.BytesIO(storage.read_bytes(uri)))
    except FileNotFoundError:
        raise DedupError(f"{uri} is missing: rebuild the shard (finecap build) before dedup") from None


def _write(uri: str, table: pa.Table, compression: str | None) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=compression)
    storage.write_bytes(uri, buffer.getvalue())
