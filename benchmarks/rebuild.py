"""Incremental rebuild after a region-prompt change vs a full build of the changed config.

Why (issue 14, point 8): rerunning `finecap build` with a changed config must recompute only the
stages whose fingerprint changed and read every other column back from the committed shards, so
a new region prompt costs about what the regions stage costs, not a whole build.

Method, all in one run on the same sample source, pipelines/local.yaml with dedup off (a separate
pass), each build one `run_build` call with its own embedded Ray session as `finecap build` runs:
1. cold: a full build into OUT_A (the first in this process: the driver's imports are paid here);
2. rebuild: a copy of pipelines/local.yaml and its prompts/ with one sentence appended to the
   region prompt (region_context/v2), built on OUT_A: only `regions` recomputes;
3. full: the same changed config built into a fresh OUT_B: what the rebuild saves you from.
Busy seconds are the manifests' `stage_seconds` (time inside a stage's call, summed over rows).

Figures (both ratios are "rebuild / what the goal allows", so <= 1.1 meets the goal):
- share = busy(regions) / total busy, of the full build OUT_B.
- wall ratio (the issue's wording) = rebuild wall / (share x full-build wall). Every build pays a
  fixed start-up (Ray's start, loading the models of the stages it runs, planning, commits) that
  does not shrink with the change: the rebuild loads only the region captioner, but on a small
  sample that start-up is most of its wall time, so this ratio is far above 1 here and falls
  towards the busy ratio as the data grows.
- busy ratio = rebuild total busy (read-back + regions) / busy(regions) of the full build: the
  work the rebuild does against the work of the changed stage, which is what the goal is about.
  Busy time is wall time inside the call, so it includes waiting for a core: in a full build the
  regions actor shares the cores with detect and OCR working on other shards, in the rebuild it
  runs alone, and other processes on the machine slow either. On a shared 2-core machine, four
  runs at 45 images gave regions 8.2-13.4 s in the rebuild and 7.9-12.7 s in the full builds
  with no consistent direction (busy ratio 0.69x-1.85x), so the load average around each build is
  recorded with the figures.
- fixed start-up of the rebuild = rebuild wall - rebuild busy (a lower bound: reading one shard
  back overlaps the regions stage on another).
Side checks (the run fails if one does not hold): the rebuild's manifests carry the new version
and record busy time for read and regions only, and OUT_A's committed global captions are the same
before and after the rebuild.

    python benchmarks/rebuild.py [--scenes 40]      # full
    python benchmarks/rebuild.py --scenes 3         # quick (make bench)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

# No quality stage: it reads the regions, so it (and the phrases it reads) would rerun too, and
# this benchmark measures a regions-only rebuild against the full build's regions stage.
OVERRIDES = ["dedup.enabled=false", "quality.enabled=false"]
REGION_PROMPT = "prompts/region_context/v2.txt"
ADDED_SENTENCE = "Mention the region's shape and size relative to the whole image."
CHANGED = "regions"
REBUILD_STAGES = {"read", CHANGED}  # read: the committed rows read back


def changed_pipeline(folder: Path) -> Path:
    """pipelines/local.yaml and its prompts/ copied into `folder`, one sentence added to the region
    prompt (a prompt's text is part of its stage's fingerprint); returns the copied YAML."""
    shutil.copy(REPO / "pipelines/local.yaml", folder / "local.yaml")
    shutil.copytree(REPO / "pipelines/prompts", folder / "prompts")
    prompt = folder / REGION_PROMPT
    prompt.write_text(prompt.read_text().rstrip("\n") + f"\n{ADDED_SENTENCE}\n")
    return folder / "local.yaml"


def timed_build(pipeline: Path, source: Path, out: Path) -> dict:
    """One build (its own Ray session); wall seconds, busy seconds per stage, the load around it."""
    from finecap.config import load_config
    from finecap.runtime.runner import run_build

    config = load_config(pipeline, OVERRIDES, **{"source.uri": str(source), "output.uri": str(out)})
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    summary = run_build(config)
    wall = time.perf_counter() - started
    busy = {k: round(v, 3) for k, v in sorted(summary.stage_seconds.items())}
    return {"wall_seconds": round(wall, 2), "busy_seconds": busy, "busy_total": round(sum(busy.values()), 3),
            "rows_in": summary.rows_in, "rows_written": summary.rows_written,
            "shards_committed": summary.shards_committed,
            "load_average_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)]}


def regions_busy_by_shard(out: Path) -> dict[str, float]:
    """Shard -> the regions stage's busy seconds in its committed manifest (where a slow first batch shows)."""
    from finecap.dataset.layout import committed_manifests

    return {shard: m["stage_seconds"].get(CHANGED, 0.0) for shard, m in sorted(committed_manifests(str(out)).items())}


def committed_column(out: Path, column: str) -> dict[str, object]:
    """key -> the committed value of `column`, over every committed shard."""
    from finecap.dataset.reader import committed_shards, read_data

    values = {}
    for shard in committed_shards(str(out)):
        table = read_data(shard, ["key", column])
        values.update(zip(table.column("key").to_pylist(), table.column(column).to_pylist(), strict=True))
    return values


def check_rebuild(out: Path, captions_before: dict, rows_before: int, rebuild: dict) -> str:
    """The side checks; returns the rebuild's version. Exits with a one-line reason if one fails."""
    from finecap.dataset.layout import committed_manifests

    manifests = committed_manifests(str(out))
    versions = {m.get("version") for m in manifests.values()}
    stages = set().union(*(m["stage_seconds"] for m in manifests.values()))
    problems = []
    if len(versions) != 1 or rebuild["shards_committed"] != len(manifests):
        problems.append(f"not every shard was rebuilt into one new version: versions {sorted(map(str, versions))}, "
                        f"{rebuild['shards_committed']} of {len(manifests)} shards committed")
    if stages != REBUILD_STAGES:
        problems.append(f"rebuild recorded busy time for {sorted(stages)}, expected {sorted(REBUILD_STAGES)}")
    if rebuild["rows_in"] != rows_before:
        problems.append(f"rebuild read {rebuild['rows_in']} rows, the output had {rows_before}")
    captions_after = committed_column(out, "captions")
    if captions_after != captions_before:
        differ = sum(captions_after.get(k) != v for k, v in captions_before.items())
        problems.append(f"global captions changed by the rebuild: {differ} of {len(captions_before)} rows differ")
    if problems:
        sys.exit("rebuild check failed: " + "; ".join(problems))
    return versions.pop()


def same_region_captions(one: dict, other: dict) -> float:
    """Share of the rows of `one` (key -> committed regions) whose region captions equal `other`'s."""
    def captions(regions):
        return [r["caption"] for r in regions or []]

    return sum(captions(v) == captions(other.get(k)) for k, v in one.items()) / max(len(one), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40, help="generated scenes (plus the 5 bundled photos)")
    parser.add_argument("--note", default="", help="appended to the recorded headline (e.g. the machine was shared)")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    from benchmarks.record import record
    from finecap.samples.source import write_sample_source

    with tempfile.TemporaryDirectory(prefix="fc-rebuild-") as tmp:
        tmp = Path(tmp)
        source = write_sample_source(tmp / "src", n_scenes=args.scenes, seed=5)
        (tmp / "changed").mkdir()
        changed = changed_pipeline(tmp / "changed")
        out_a, out_b = tmp / "out-a", tmp / "out-b"
        cold = timed_build(REPO / "pipelines/local.yaml", source, out_a)
        cold["regions_busy_by_shard"] = regions_busy_by_shard(out_a)
        captions_before = committed_column(out_a, "captions")
        regions_before = committed_column(out_a, "regions")
        rebuild = timed_build(changed, source, out_a)
        version = check_rebuild(out_a, captions_before, cold["rows_in"], rebuild)
        rebuild["regions_busy_by_shard"] = regions_busy_by_shard(out_a)
        full = timed_build(changed, source, out_b)
        full["regions_busy_by_shard"] = regions_busy_by_shard(out_b)
        regions_after = committed_column(out_a, "regions")
        agreement = same_region_captions(regions_after, committed_column(out_b, "regions"))
        unchanged = same_region_captions(regions_after, regions_before)
    share = full["busy_seconds"][CHANGED] / full["busy_total"]
    allowed_wall = share * full["wall_seconds"]
    wall_ratio = rebuild["wall_seconds"] / allowed_wall
    busy_ratio = rebuild["busy_total"] / full["busy_seconds"][CHANGED]
    fixed = rebuild["wall_seconds"] - rebuild["busy_total"]
    figures = {"images": cold["rows_in"], "change": f"appended to {REGION_PROMPT}: {ADDED_SENTENCE!r}",
               "rebuild_version": version, "cold_full_build": cold, "rebuild": rebuild,
               "full_build_changed_config": full, "regions_share_of_full_busy": round(share, 4),
               "allowed_rebuild_wall_seconds": round(allowed_wall, 2), "wall_ratio": round(wall_ratio, 3),
               "busy_ratio": round(busy_ratio, 3), "rebuild_fixed_seconds": round(fixed, 2),
               "rebuild_wall_vs_full_wall": round(rebuild["wall_seconds"] / full["wall_seconds"], 3),
               "region_captions_equal_to_full_build": round(agreement, 3),
               "region_captions_equal_to_before_rebuild": round(unchanged, 3)}
    print(json.dumps(figures, indent=2))
    print(f"checks: the rebuild (version {version}) ran {', '.join(sorted(REBUILD_STAGES))} only; "
          f"global captions unchanged; region captions equal to the full build's on {agreement:.0%} of rows, "
          f"to those before the prompt change on {unchanged:.0%}")
    print(f"regions' share of the full build's busy time: {share:.1%} "
          f"({full['busy_seconds'][CHANGED]:.1f} s of {full['busy_total']:.1f} s)")
    print(f"wall ratio = rebuild wall / (share x full wall) = {rebuild['wall_seconds']:.1f} s / "
          f"{allowed_wall:.1f} s = {wall_ratio:.2f}x (goal <= 1.1x; includes {fixed:.1f} s fixed start-up)")
    headline = (f"busy ratio {busy_ratio:.2f}x: rebuild busy {rebuild['busy_total']:.1f} s (read-back + regions) vs "
                f"the full build's regions {full['busy_seconds'][CHANGED]:.1f} s; wall ratio {wall_ratio:.2f}x: "
                f"rebuild {rebuild['wall_seconds']:.1f} s vs share {share:.1%} x full {full['wall_seconds']:.1f} s, "
                f"of which {fixed:.1f} s fixed start-up ({cold['rows_in']} images; 1-min load average up to "
                f"{max(b['load_average_1m'][1] for b in (cold, rebuild, full)):.0f} on {os.cpu_count()} cores)")
    print(f"busy ratio = rebuild busy / full build's regions busy = {busy_ratio:.2f}x (goal <= 1.1x)")
    print(headline)
    if args.note:
        headline += f"; {args.note}"
    if not args.no_record:
        record("rebuild", figures, headline, "<= 1.1x (rebuild <= changed stages' share of a full build)")


if __name__ == "__main__":
    main()
