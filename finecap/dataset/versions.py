"""Dataset versions and lineage: `OUT/_versions/NNNNNN.json`, one record per version.

A version is what one configuration wrote into an output. The first build opens version
000001; a rerun with the same stage fingerprints continues the latest version (a resume); a
rerun whose fingerprints differ opens the next one, whose parent is the latest (or, for
`finecap build --from OLD`, OLD's latest version), naming the stages it recomputes and why.
Each shard's manifest names the version that committed it, so `finecap log` can say how far
each version got. Records are written whole (storage.write_bytes) by the driver that holds the
output lock, so ids are never taken twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter

from finecap import storage

VERSIONS = "_versions"


def version_uri(output: str, version: str) -> str:
    return storage.join(output, VERSIONS, f"{version}.json")


def list_versions(output: str) -> list[dict]:
    """Every version record of `output`, oldest first."""
    records = [json.loads(storage.read_bytes(uri)) for uri in storage.list_files(storage.join(output, VERSIONS), ".json")]
    return sorted(records, key=lambda r: r["version"])


def latest_version(output: str) -> dict | None:
    versions = list_versions(output)
    return versions[-1] if versions else None


def next_version_id(output: str) -> str:
    versions = list_versions(output)
    return f"{int(versions[-1]['version']) + 1 if versions else 1:06d}"


def write_version(output: str, record: dict) -> None:
    storage.write_bytes(version_uri(output, record["version"]), json.dumps(record, indent=2).encode())


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def current_shards(manifests: dict[str, dict]) -> Counter:
    """How many of the committed shards each version wrote (by the manifests' `version`)."""
    return Counter(manifest.get("version") for manifest in manifests.values())


def log_lines(output: str, manifests: dict[str, dict]) -> list[str]:
    """`finecap log`: the versions of an output, newest first, with their lineage."""
    versions = list_versions(output)
    if not versions:
        return [f"{output}: no versions recorded (not a FineCap output, or built before versions existed)"]
    current = current_shards(manifests)
    lines = []
    for record in reversed(versions):
        parent = record.get("parent")
        if isinstance(parent, dict):
            parent = f"{parent.get('output')} version {parent.get('version')}"
        lines.append(f"version {record['version']}  {record.get('status', '?')}  created {record.get('created')}"
                     f"  parent {parent or '-'}")
        lines.append(f"  shards: {current.get(record['version'], 0)} current of {record.get('shards', '?')} planned"
                     f"  config {record.get('config_hash')}  finecap {record.get('finecap_version')}")
        for stage, reasons in record.get("recomputed", {}).items():
            fingerprint = record.get("stages", {}).get(stage, {}).get("fingerprint", "-")
            lines.append(f"  recomputed {stage:<8} {fingerprint}  {'; '.join(reasons)}")
        kept = [s for s in record.get("stages", {}) if s not in record.get("recomputed", {})]
        if kept:
            lines.append(f"  kept       {', '.join(kept)}")
    return lines
