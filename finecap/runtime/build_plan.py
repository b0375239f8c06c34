"""What a build will do, decided on the driver before any work: shards, stages, version.

The build's stage fingerprints (stages/fingerprints.py) against each committed shard's say which
shards are done, which are rebuilt from their committed files and with which stages
(runtime/rebuild.py), and which are new. The build continues the output's latest version when
its fingerprints are the same (a resume), or opens the next version, whose record names its
parent and every recomputed stage with the settings that changed (dataset/versions.py).
`finecap build --from OLD` (or `source.kind: finecap`) builds a new output from OLD's committed
shards the same way, reading OLD and never writing it; OLD's source is the new build's source
for rows that must be decided again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from finecap import __version__
from finecap.config import PipelineConfig, SourceConfig
from finecap.dataset.layout import committed_manifests
from finecap.dataset.versions import latest_version, next_version_id, now, write_version
from finecap.redact import public_uri
from finecap.runtime.rebuild import RebuildPlan, plan_shard, why
from finecap.runtime.resume import ResumeRefused
from finecap.sources import ShardSpec, make_source
from finecap.stages.fingerprints import SOURCE, StagePrint, fingerprints_of, pipeline_prints, prints_hash
from finecap.typed_config import to_dict

FROM_KIND = "finecap"


@dataclass
class BuildPlan:
    config: PipelineConfig  # with --from: the source is the earlier output's own source
    prints: dict[str, StagePrint]
    specs: list[ShardSpec]  # every shard of the output
    todo: list[ShardSpec]  # the shards this run builds or rebuilds
    rebuild: RebuildPlan | None  # None: a first build (or a resume of one): every stage, every row
    version: dict
    lines: list[str] = field(default_factory=list)  # what the run will recompute, and why

    @property
    def fingerprints(self) -> dict[str, str]:
        return fingerprints_of(self.prints)

    @property
    def config_hash(self) -> str:
        return prints_hash(self.prints)


def plan_build(config: PipelineConfig, output_manifests: dict[str, dict],
               specs: list[ShardSpec] | None = None) -> BuildPlan:
    """Plan a build of `config` into its output, whose committed manifests are given (`specs`:
    the source's shard plan when the caller has it already)."""
    output = config.output.uri
    base = config.source.uri if config.source.kind == FROM_KIND else output
    base_version = latest_version(base)
    config, prints = planned_prints(config)
    base_manifests = output_manifests if base == output else committed_manifests(base)
    fingerprints = fingerprints_of(prints)
    specs = specs if specs is not None and base == output else _specs(config, base, base_manifests)
    todo, rebuild = [], RebuildPlan()
    for spec in specs:
        own = output_manifests.get(spec.shard_id)
        if own is not None and own.get("fingerprints") == fingerprints:
            continue  # done
        todo.append(spec)
        # This output's own committed version first; with --from, else the earlier output's.
        candidates = [(own, output)] if own is not None else []
        if base != output and spec.shard_id in base_manifests:
            candidates.append((base_manifests[spec.shard_id], base))
        shard = next((p for m, where in candidates if (p := plan_shard(spec.shard_id, m, where, prints))), None)
        if shard is None:
            rebuild.new.add(spec.shard_id)
        else:
            rebuild.shards[spec.shard_id] = shard
    if base != output and any(s.redecided_rows for s in rebuild.shards.values()):
        todo = _with_source_items(config, todo, base)
    version = _open_version(config, output, base, base_version, prints, len(specs))
    plan = BuildPlan(config, prints, specs, todo, rebuild if rebuild.shards else None, version)
    plan.lines = _lines(plan, base)
    return plan


def planned_prints(config: PipelineConfig) -> tuple[PipelineConfig, dict[str, StagePrint]]:
    """The fingerprints a build of `config` gives, and the config it runs: with --from, the
    earlier output's source and source fingerprint (so its unchanged stages match)."""
    if config.source.kind != FROM_KIND:
        return config, pipeline_prints(config)
    base_version = latest_version(config.source.uri)
    if base_version is None:
        raise ResumeRefused(f"source.uri: {config.source.uri} has no FineCap versions to build from "
                            "(not a FineCap output, or built by a FineCap without versions)")
    config = replace(config, source=SourceConfig(**base_version["source_config"]))
    return config, pipeline_prints(config, StagePrint.from_json(SOURCE, base_version["stages"][SOURCE]))


def source_shard_ids(config: PipelineConfig) -> list[str]:
    """Every shard a build of `config` writes: the source's, or with --from, the earlier output's."""
    if config.source.kind == FROM_KIND:
        return sorted(committed_manifests(config.source.uri))
    return [spec.shard_id for spec in make_source(config).plan()]


def _specs(config: PipelineConfig, base: str, base_manifests: dict[str, dict]) -> list[ShardSpec]:
    """The shards: the source's plan, or for a build from an earlier output, its shards."""
    if base == config.output.uri:
        return make_source(config).plan()
    return [ShardSpec(shard_id, m["rows_in"], []) for shard_id, m in sorted(base_manifests.items())]


def _with_source_items(config: PipelineConfig, todo: list[ShardSpec], base: str) -> list[ShardSpec]:
    """Shards of a build from `base`, with the source's items for rows decided again."""
    try:
        planned = {s.shard_id: s for s in make_source(config).plan()}
    except Exception as exc:
        raise ResumeRefused(
            f"rows of {base} rejected by a changed stage must be read again from its source "
            f"{public_uri(config.source.uri)}, which cannot be read: {type(exc).__name__}: {exc}"
        ) from None
    return [replace(s, items=planned[s.shard_id].items) if s.shard_id in planned else s for s in todo]


def _open_version(config, output: str, base: str, base_version: dict | None,
                  prints: dict[str, StagePrint], shards: int) -> dict:
    """The version this build writes: the latest one when the fingerprints agree, else the next."""
    fingerprints = fingerprints_of(prints)
    latest = latest_version(output)
    if latest is not None and latest.get("fingerprints") == fingerprints:
        return latest
    parent = latest if base == output else base_version
    source = to_dict(config.source)
    source["uri"] = public_uri(source["uri"])
    record = {
        "version": next_version_id(output),
        "parent": None if parent is None else (
            parent["version"] if base == output else {"output": public_uri(base), "version": parent["version"]}),
        "created": now(),
        "status": "building",
        "finecap_version": __version__,
        "config_hash": prints_hash(prints),
        "shards": shards,
        "fingerprints": fingerprints,
        "stages": {name: p.to_json() for name, p in prints.items()},
        "recomputed": why((parent or {}).get("stages", {}), prints),
        "source_config": source,
    }
    write_version(output, record)
    return record


def complete_version(output: str, version: dict) -> None:
    if version.get("status") != "complete":
        write_version(output, {**version, "status": "complete", "completed": now()})


def _lines(plan: BuildPlan, base: str) -> list[str]:
    """What a rebuild recomputes and why, printed before any work."""
    if plan.rebuild is None:
        return []
    shards = plan.rebuild.shards
    runs = sorted({s for p in shards.values() for s in p.runs}, key=list(plan.prints).index)
    where = "its committed shards" if base == plan.config.output.uri else public_uri(base)
    lines = [f"rebuild (version {plan.version['version']}): {len(shards)} committed shards read back from {where}, "
             f"{len(plan.rebuild.new)} new"]
    recomputed = plan.version.get("recomputed", {})
    for stage in runs:
        reason = "; ".join(recomputed.get(stage, [])) or "its output is not kept (a later stage needs it)"
        lines.append(f"  recompute {stage}: {reason}")
    kept = [s for s in plan.prints if s != SOURCE and s not in runs]
    if kept:
        lines.append(f"  keep {', '.join(kept)} (read back, not recomputed)")
    again = sum(p.redecided_rows for p in shards.values())
    if again:
        lines.append(f"  {again} rejected rows decided again (rejected by a changed stage; read from the source)")
    return lines
