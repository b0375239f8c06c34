"""Two evaluations side by side: `finecap eval dataset A --against B`.

Results are flattened to named numeric leaves ("captions[tiny:vlm-a@1a2b3c4d global_detailed@v1].f1",
"detection.ap", "detection.per_category[square].ap"), groups named by what identifies them rather
than by list position, so a captioner present in one version only shows as a metric with one
side missing. The change is A - B: how A differs from the baseline B.
"""

from __future__ import annotations

import math

# What names a group in the result's lists; the rest of its keys are its metrics.
_GROUP_KEYS = {
    "captions": ("model", "model_revision", "prompt_id"),
    "region_captions": ("caption_model",),
    "by_captioner": ("model", "model_revision", "prompt_id"),
}
_SKIP = {"dataset", "truth", "top", "model", "version"}  # names, ids and examples, not metrics


def group_label(entry: dict, keys: tuple[str, ...]) -> str:
    """"model@revision prompt", the revision's hash cut to 8 characters (enough to tell versions apart)."""
    values = [str(entry.get(k)) for k in keys]
    if keys == ("model", "model_revision", "prompt_id"):
        return f"{values[0]}@{values[1].removeprefix('sha256:')[:8]} {values[2]}"
    return " ".join(values)


def numeric_leaves(value, prefix: str = "") -> dict[str, float]:
    """Finite numbers reachable through dict keys and named groups, by dotted path; other lists
    (histograms, examples), bools, strings and the names in _SKIP are left out. `finecap diff`
    compares report files' metrics through this too."""
    if isinstance(value, bool):
        return {}
    if isinstance(value, (int, float)):
        return {prefix: value} if math.isfinite(value) else {}
    if not isinstance(value, dict):
        return {}
    leaves: dict[str, float] = {}
    for name, item in value.items():
        if name in _SKIP:
            continue
        path = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(item, list) and name in _GROUP_KEYS:
            keys = _GROUP_KEYS[name]
            for entry in item:
                metrics = {k: v for k, v in entry.items() if k not in keys}
                leaves.update(numeric_leaves(metrics, f"{path}[{group_label(entry, keys)}]"))
        else:
            leaves.update(numeric_leaves(item, path))
    return leaves


def compare_results(a: dict, b: dict) -> list[dict]:
    """[{metric, a, b, change}] over every metric either side has, in A's order then B's extras."""
    flat_a, flat_b = numeric_leaves(a), numeric_leaves(b)
    names = list(flat_a) + [n for n in flat_b if n not in flat_a]
    rows = []
    for name in names:
        va, vb = flat_a.get(name), flat_b.get(name)
        rows.append({"metric": name, "a": va, "b": vb,
                     "change": va - vb if va is not None and vb is not None else None})
    return rows
