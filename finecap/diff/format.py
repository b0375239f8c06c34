"""The human-readable `finecap diff` report: the same facts as the JSON, A beside B."""

from __future__ import annotations

TOP_CATEGORIES = 10  # categories with the largest change shown per origin; the JSON has them all


def format_diff(diff: dict) -> list[str]:
    lines = [f"A: {diff['a']}", f"B: {diff['b']}"]
    lines += _rows(diff["rows"])
    lines += _captions(diff["captions"])
    lines += _regions(diff["regions"])
    lines += _provenance(diff["provenance"])
    lines += _metrics(diff["metrics"])
    return lines


def _counted(entry: dict) -> str:
    """'3 (e.g. k1, k2)' for a {count, examples} entry."""
    examples = f" (e.g. {', '.join(entry['examples'])})" if entry["examples"] else ""
    return f"{entry['count']}{examples}"


def _side_by_side(label: str, a, b, width: int = 28) -> str:
    return f"  {label:<{width}} {_fmt(a):>12} {_fmt(b):>12}"


def _fmt(value) -> str:
    return "-" if value is None else str(value)


def _rows(rows: dict) -> list[str]:
    lines = ["rows", _side_by_side("", "A", "B")]
    for name in ("shards", "rows_in", "written", "rejected"):
        lines.append(_side_by_side(name, rows["a"][name], rows["b"][name]))
    keys = rows["keys"]
    lines.append(f"  keys: {keys['both']} in both, {_counted(keys['only_a'])} only in A, "
                 f"{_counted(keys['only_b'])} only in B")
    if rows["rejects"]:
        lines.append("rejects (stage/reason)")
        lines += [_side_by_side(reason, n["a"], n["b"]) for reason, n in rows["rejects"].items()]
    changed = rows["fate_changed"]
    labels = {"kept_to_rejected": "kept -> rejected {}", "rejected_to_kept": "rejected {} -> kept",
              "reason_changed": "rejected {}"}
    moves = [f"  {labels[kind].format(reason)}: {_counted(entry)}"
             for kind, entries in changed.items() for reason, entry in entries.items()]
    lines += ["fate changed"] + moves if moves else ["fate changed: none"]
    return lines


def _captions(captions: list[dict]) -> list[str]:
    lines = ["captions (model, prompt)" if captions else "captions: none either side"]
    for entry in captions:
        a, b, both = entry["a"], entry["b"], entry["in_both"]
        revisions = f"revision A {', '.join(a['revisions']) or '-'}; B {', '.join(b['revisions']) or '-'}"
        lines.append(f"  {entry['model']} {entry['prompt_id']} ({revisions})")
        lines.append(_side_by_side("rows with one", a["rows"], b["rows"]))
        lines.append(_side_by_side("mean chars", a["mean_chars"], b["mean_chars"]))
        lines.append(_side_by_side("mean tokens", a["mean_tokens"], b["mean_tokens"]))
        lines.append(f"    rows in both: {both['identical']} identical, changed {_counted(both['changed'])}, "
                     f"added {_counted(both['added'])}, removed {_counted(both['removed'])}")
    return lines


def _regions(regions: dict) -> list[str]:
    lines = ["regions", _side_by_side("", "A", "B")]
    for origin, entry in regions["by_origin"].items():
        lines.append(_side_by_side(f"{origin} regions", entry["regions"]["a"], entry["regions"]["b"]))
        lines.append(_side_by_side(f"{origin} captioned", entry["captioned"]["a"], entry["captioned"]["b"]))
    for origin, entry in regions["in_both"].items():
        lines.append(f"  {origin} in rows in both: {entry['matched']} matched "
                     f"({entry['caption_identical']} same caption), only in A {_counted(entry['only_a'])}, "
                     f"only in B {_counted(entry['only_b'])}")
        lines.append(f"    captions changed {_counted(entry['caption_changed'])}, added "
                     f"{_counted(entry['caption_added'])}, removed {_counted(entry['caption_removed'])}; "
                     f"category changed {_counted(entry['category_changed'])}")
    for origin, categories in regions["by_category"].items():
        moved = [(c, n) for c, n in categories.items() if n["a"] != n["b"]][:TOP_CATEGORIES]
        if moved:
            lines.append(f"  {origin} categories that changed most: "
                         + ", ".join(f"{c} {n['a']} -> {n['b']}" for c, n in moved))
    return lines


def _provenance(provenance: dict) -> list[str]:
    lines = ["provenance"]
    for stage, entry in provenance["fingerprints"].items():
        state = {True: "same", False: "DIFFERS", None: "not recorded on one side"}[entry["same"]]
        lines.append(f"  {stage:<12} {state}: A {', '.join(entry['a']) or '-'}; B {', '.join(entry['b']) or '-'}")
    if not provenance["fingerprints"]:
        lines.append("  no stage fingerprints recorded")
    for name in ("versions", "schema_versions", "finecap_versions", "config_hashes"):
        entry = provenance[name]
        if entry["a"] or entry["b"]:
            lines.append(f"  {name}: A {', '.join(entry['a']) or '-'}; B {', '.join(entry['b']) or '-'}")
    for prompt, entry in provenance["prompts"].items():
        if entry["a"] != entry["b"]:
            lines.append(f"  prompt {prompt}: A {_fmt(entry['a'])}; B {_fmt(entry['b'])}")
    return lines


def _metrics(metrics: dict) -> list[str]:
    lines = [f"metrics: unreadable report file {uri}" for uri in metrics["unreadable"]]
    if not metrics["files"]:
        return lines + ["metrics: no report file with numbers in both outputs"]
    for name, leaves in metrics["files"].items():
        differ = {leaf: v for leaf, v in leaves.items() if v["delta"] != 0}
        lines.append(f"metrics in report/{name}: {len(leaves)} shared, {len(differ)} differ")
        lines += [f"  {leaf:<40} {_fmt(v['a']):>12} -> {_fmt(v['b']):<12} ({v['delta']:+})"
                  for leaf, v in differ.items()]
    return lines
