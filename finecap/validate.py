"""`finecap validate`: is an output a complete, consistent finecap dataset?

Checks, shard by shard (one shard in memory at a time, read through finecap.dataset): schema
and HF metadata against the schema version the shard's manifest names (v1 outputs keep
validating), accounting (rows in = written + rejected, matching the files), unique keys across
the whole output, provenance of every caption and box ranges. A data file no manifest names is
an orphan, not a problem: it is never read, and a rebuild leaves the replaced version briefly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pyarrow as pa

from finecap.dataset import CommittedShard, committed_shards, orphan_data_files, read_data, read_rejects
from finecap.schema import load_schema, validate_table

_READ_COLUMNS = ["key", "captions", "regions", "provenance"]


@dataclass
class ValidationReport:
    shards: int = 0
    rows: int = 0
    rejects: int = 0
    problems: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # data files no manifest names (warnings)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_output(output: str) -> ValidationReport:
    report = ValidationReport()
    try:
        shards = committed_shards(output)
    except ValueError as exc:  # a manifest naming a file outside the output
        report.problems.append(str(exc))
        return report
    if not shards:
        report.problems.append(f"no committed shards under {output} (no _manifest/*.json)")
        return report
    seen_keys: dict[str, str] = {}
    hashes = {s.manifest["config_hash"] for s in shards}
    if len(hashes) > 1:
        report.problems.append(f"shards come from different configs: {sorted(hashes)}")
    for shard in shards:
        report.shards += 1
        _check_shard(shard, seen_keys, report)
    report.orphans = orphan_data_files(output, shards)
    return report


def _check_shard(shard: CommittedShard, seen_keys: dict[str, str], report: ValidationReport) -> None:
    where, manifest = f"shard {shard.shard_id}", shard.manifest
    try:
        schema = load_schema(shard.schema_version)
    except ValueError as exc:
        report.problems.append(f"{where}: {exc}")
        return
    try:
        data = read_data(shard)
        rejects = read_rejects(shard)
    except (OSError, pa.ArrowException) as exc:  # missing, or not Parquet
        report.problems.append(f"{where}: cannot read its files: {exc}")
        return
    for problem in validate_table(data, schema.arrow, schema.required()):
        report.problems.append(f"{where} data: {problem}")
    for problem in validate_table(rejects, schema.rejects_arrow, schema.required(rejects=True)):
        report.problems.append(f"{where} rejects: {problem}")
    if b"huggingface" not in (data.schema.metadata or {}):
        report.problems.append(f"{where} data: no 'huggingface' features metadata (images would not decode)")
    report.rows += data.num_rows
    report.rejects += rejects.num_rows
    if manifest["rows_written"] != data.num_rows or manifest["rows_rejected"] != rejects.num_rows:
        report.problems.append(
            f"{where}: manifest says {manifest['rows_written']} written + {manifest['rows_rejected']} "
            f"rejected, files hold {data.num_rows} + {rejects.num_rows}"
        )
    if data.num_rows + rejects.num_rows != manifest["rows_in"]:
        report.problems.append(
            f"{where}: accounting broken: {manifest['rows_in']} rows in, {data.num_rows} written + "
            f"{rejects.num_rows} rejected"
        )
    for key in data.column("key").to_pylist() + rejects.column("key").to_pylist():
        if key in seen_keys:
            report.problems.append(f"{where}: duplicate key {key!r} (also in shard {seen_keys[key]})")
        seen_keys[key] = shard.shard_id
    if data.num_rows and "captions" in data.column_names:
        _check_rows(where, data.select([c for c in _READ_COLUMNS if c in data.column_names]), manifest, report)


def _check_rows(where: str, data, manifest: dict, report: ValidationReport) -> None:
    expects_captions = any(m.get("stage") == "caption" for m in manifest.get("models", []))
    for row in data.to_pylist():
        key = row["key"]
        captions = row.get("captions") or []
        if expects_captions and not captions:
            report.problems.append(f"{where}: row {key!r} has no caption")
        for caption in captions:
            missing = [k for k in ("model", "model_revision", "prompt_id") if not caption.get(k)]
            if missing:
                report.problems.append(f"{where}: row {key!r} caption lacks {', '.join(missing)}")
        for region in row.get("regions") or []:
            box = region.get("bbox") or []
            if len(box) != 4 or not all(0.0 <= v <= 1.0 for v in box) or box[0] > box[2] or box[1] > box[3]:
                report.problems.append(f"{where}: row {key!r} has a bad box {box}")
        provenance = row.get("provenance") or {}
        if provenance.get("config_hash") != manifest["config_hash"]:
            report.problems.append(f"{where}: row {key!r} provenance config_hash differs from the manifest")
        if len(report.problems) > 200:
            return


def format_report(report: ValidationReport, output: str) -> str:
    head = (
        f"{'OK' if report.ok else 'INVALID'}: {output}: {report.shards} shards, "
        f"{report.rows} rows, {report.rejects} rejects"
    )
    lines = [head] + [f"  - {p}" for p in report.problems[:50]]
    if len(report.problems) > 50:
        lines.append(f"  ... and {len(report.problems) - 50} more problems")
    if report.orphans:
        lines.append(f"  warning: {len(report.orphans)} data files no manifest names (not read; a rebuild "
                     f"leaves the replaced versions until it finishes), e.g. {report.orphans[0]}")
    return "\n".join(lines)


def report_json(report: ValidationReport) -> str:
    return json.dumps({"ok": report.ok, "shards": report.shards, "rows": report.rows,
                       "rejects": report.rejects, "problems": report.problems,
                       "orphans": len(report.orphans), "orphan_files": report.orphans[:50]})
