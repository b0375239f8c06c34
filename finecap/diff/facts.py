"""What the two outputs say about themselves: manifest counts and provenance, report metrics.

Manifests give the accounting (rows in, written, rejected), the per-stage fingerprints and the
version that wrote each shard; a rebuild that replaced only some shards shows several
fingerprints for a stage. Metrics are the numeric leaves of the JSON files under OUT/report/
(report's stats.json, quality and eval results), compared where both outputs carry the same
file and leaf.
"""

from __future__ import annotations

import json
from collections import Counter

from finecap import storage
from finecap.quality.compare import numeric_leaves

LISTED = {"versions": "version", "schema_versions": "schema_version",
          "finecap_versions": "finecap_version", "config_hashes": "config_hash"}


def manifest_counts(manifests: list[dict]) -> dict:
    return {
        "shards": len(manifests),
        "rows_in": sum(m.get("rows_in", 0) for m in manifests),
        "written": sum(m.get("rows_written", 0) for m in manifests),
        "rejected": sum(m.get("rows_rejected", 0) for m in manifests),
    }


def _fingerprints(manifests: list[dict]) -> dict[str, Counter]:
    """Stage -> fingerprint -> shards that recorded it."""
    stages: dict[str, Counter] = {}
    for manifest in manifests:
        for stage, fingerprint in (manifest.get("fingerprints") or {}).items():
            stages.setdefault(stage, Counter())[fingerprint] += 1
    return stages


def compare_provenance(a: list[dict], b: list[dict]) -> dict:
    """Per-stage fingerprints, versions and prompt hashes of A's and B's manifests side by side.

    A stage is `same` when both sides recorded exactly one and the same fingerprint set, None
    when one side recorded none (an output from before fingerprints), else False."""
    fa, fb = _fingerprints(a), _fingerprints(b)
    stages = {}
    for stage in sorted(set(fa) | set(fb)):
        left, right = dict(sorted(fa.get(stage, {}).items())), dict(sorted(fb.get(stage, {}).items()))
        same = None if not left or not right else set(left) == set(right)
        stages[stage] = {"a": left, "b": right, "same": same}
    prompts_a = {k: v for m in a for k, v in (m.get("prompts") or {}).items()}
    prompts_b = {k: v for m in b for k, v in (m.get("prompts") or {}).items()}
    return {
        "fingerprints": stages,
        "stages_differ": [s for s, entry in stages.items() if entry["same"] is False],
        **{name: {"a": _distinct(a, field), "b": _distinct(b, field)} for name, field in LISTED.items()},
        "prompts": {p: {"a": prompts_a.get(p), "b": prompts_b.get(p)} for p in sorted(set(prompts_a) | set(prompts_b))},
    }


def _distinct(manifests: list[dict], field: str) -> list[str]:
    return sorted({str(m[field]) for m in manifests if m.get(field) is not None})


def read_reports(output: str) -> tuple[dict[str, object], list[str]]:
    """The JSON files directly under OUT/report/ by name, and those that could not be parsed."""
    reports, unreadable = {}, []
    for uri in storage.list_files(storage.join(output, "report"), ".json"):
        try:
            reports[uri.replace("\\", "/").rsplit("/", 1)[-1]] = json.loads(storage.read_bytes(uri))
        except (ValueError, UnicodeDecodeError):
            unreadable.append(uri)
    return reports, unreadable


def compare_metrics(a: dict[str, object], b: dict[str, object]) -> dict[str, dict]:
    """File -> leaf -> {a, b, delta} for the numeric leaves both outputs' report files carry."""
    files = {}
    for name in sorted(set(a) & set(b)):
        left, right = numeric_leaves(a[name]), numeric_leaves(b[name])
        shared = sorted(set(left) & set(right))
        if shared:
            files[name] = {leaf: {"a": left[leaf], "b": right[leaf], "delta": _delta(left[leaf], right[leaf])}
                           for leaf in shared}
    return files


def _delta(a: float, b: float) -> float:
    delta = b - a
    return delta if isinstance(delta, int) else round(delta, 6)
