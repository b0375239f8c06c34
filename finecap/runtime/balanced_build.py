"""A balanced build (`balance.enabled`): region captions for the class-balanced selection only.

Which instances of a frequent category survive depends on every shard's counts, so no single
pass on many workers can decide it as the regions are found. The build runs in two passes, in
one hold of the output's lock:
1. every stage up to the region captions (regions and quality off), committed as usual;
2. the selection over the committed shards (finecap/balance.py, what `finecap balance` writes;
   OUT/balance, summary last), then the build itself with `balance.selection` set: the regions
   stage captions only selected regions, and the selection's digest is in its fingerprint.
Pass 2 is an incremental rebuild (runtime/rebuild.py): it reads pass 1's rows back and runs the
region captions and quality only. Each pass is a version (`finecap log` shows both).

Reruns do no more than they must. Pass 1 runs only when some shard of the source has no
committed version with this config's detect and ocr fingerprints (a new shard, a changed
detector, a first build); the selection is written again only when its digest (arguments plus
every shard's detect/ocr fingerprints) differs. A finished balanced build rerun goes straight to
pass 2, which finds every shard done. A driver killed in pass 1 resumes pass 1; killed while the
selection is written, it writes it again; killed in pass 2, it resumes pass 2.
The price of that simplicity: when pass 1 does run over shards a pass 2 had finished, their
region captions are cleared and made again, since the new selection may keep other regions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from finecap.balance import balance, region_inputs, selection_digest
from finecap.balance_selection import read_summary, selection_uri
from finecap.config import PipelineConfig
from finecap.dataset.layout import committed_manifests
from finecap.runtime.build_plan import planned_prints
from finecap.stages.fingerprints import fingerprints_of

Build = Callable[[PipelineConfig, bool], object]  # one pass under the held lock: (config, resume) -> summary


def first_pass_config(config: PipelineConfig) -> PipelineConfig:
    """Every stage up to the region captions: regions and quality (which reads them) off."""
    return replace(config, regions=replace(config.regions, enabled=False),
                   quality=replace(config.quality, enabled=False))


def second_pass_config(config: PipelineConfig, selection: str) -> PipelineConfig:
    """The build itself, its regions stage captioning the selection at `selection`."""
    return replace(config, balance=replace(config.balance, enabled=False, selection=selection))


def run_balanced(config: PipelineConfig, resume: bool, build: Build, check_lock: Callable[[], None],
                 shard_ids: list[str]):
    """Both passes over the source's shards `shard_ids`; returns the second pass's summary (the
    first pass prints its own line)."""
    output = config.output.uri
    first = first_pass_config(config)
    expected = region_inputs({"fingerprints": fingerprints_of(planned_prints(first)[1])})
    if not resume or not _regions_inputs_done(output, shard_ids, expected):
        print("balanced build, pass 1 of 2: every stage up to the region captions", flush=True)
        summary = build(first, resume)
        print(f"pass 1: {summary.line()}", flush=True)
    uri = selection_uri(output)
    settings = config.balance
    origins = settings.origins()
    digest = selection_digest(settings.cap, settings.keep_below, settings.seed, origins,
                              dict.fromkeys(shard_ids, expected))
    if (read_summary(uri) or {}).get("digest") != digest:
        check_lock()  # the selection is the output's: write it only while the lock is ours
        picked = balance(output, settings.cap, settings.seed, origins, uri, settings.keep_below)
        if picked.digest != digest:  # a shard changed between the passes: never caption a stale selection
            raise RuntimeError(f"the selection's inputs ({picked.digest}) are not the ones pass 1 committed ({digest})")
        print(f"balanced {output}: {picked.line()}", flush=True)
    print("balanced build, pass 2 of 2: region captions of the selected regions", flush=True)
    return build(second_pass_config(config, uri), True)


def _regions_inputs_done(output: str, shard_ids: list[str], expected: str) -> bool:
    """Every shard committed with the detect and ocr fingerprints this config gives."""
    manifests = committed_manifests(output)
    return all(sid in manifests and region_inputs(manifests[sid]) == expected for sid in shard_ids)
