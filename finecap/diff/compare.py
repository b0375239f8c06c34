"""`diff_outputs(A, B)`: read two FineCap outputs through dataset.reader and compare them.

Two passes, each one shard at a time. The first reads only keys, reject stages and reasons
(fate frames, rows.py) and pairs every shard of A with the shards of B that hold its rows kept
in both (one to one when B rebuilt A from the same input). The second reads `key, captions,
regions` (never the image bytes) and folds each shard into per-side totals and, for paired
shards, the row-by-row comparison. Memory is the two fate frames plus about two shards of
caption and region columns; a B shard is read again only when A's shards split B's rows
differently (B keeps its last shard read).
"""

from __future__ import annotations

import polars as pl

from finecap.dataset.reader import CommittedShard, committed_shards, read_data, read_rejects
from finecap.diff.captions import CaptionTotals, caption_rows
from finecap.diff.facts import compare_metrics, compare_provenance, manifest_counts, read_reports
from finecap.diff.regions import RegionTotals, region_rows
from finecap.diff.rows import compare_fates, concat_fates, fate_frame, kept_pairs
from finecap.errors import UserError
from finecap.redact import public_uri

DATA_COLUMNS = ["key", "captions", "regions"]
REJECT_COLUMNS = ["key", "stage", "reason"]
DEFAULT_EXAMPLES = 5


class DiffError(UserError, ValueError):
    """The outputs cannot be compared (one of them has no committed shard)."""


class _Content:
    """A shard's keys, caption rows and region rows."""

    def __init__(self, shard: CommittedShard) -> None:
        data = read_data(shard, DATA_COLUMNS)
        self.shard_id = shard.shard_id
        self.keys = pl.from_arrow(data.select(["key"])).cast({"key": pl.String})
        self.captions = caption_rows(data)
        self.regions = region_rows(data)


def diff_outputs(a: str, b: str, examples: int = DEFAULT_EXAMPLES) -> dict:
    """Everything `finecap diff A B` reports, as plain JSON-ready values (see the module doc)."""
    shards = {"a": committed_shards(a), "b": committed_shards(b)}
    for side, uri in (("a", a), ("b", b)):
        if not shards[side]:
            raise DiffError(f"no committed shards under {public_uri(uri)} (no _manifest/*.json)")
    fates = {side: concat_fates([_fates(s) for s in shards[side]]) for side in shards}
    captions, regions = CaptionTotals(examples), RegionTotals(examples)
    _fold_content(shards["a"], shards["b"], kept_pairs(fates["a"], fates["b"]), captions, regions)
    manifests = {side: [s.manifest for s in shards[side]] for side in shards}
    (reports_a, unreadable_a), (reports_b, unreadable_b) = read_reports(a), read_reports(b)
    return {
        "a": public_uri(a),  # printed and often pasted: never a presigned query string or password
        "b": public_uri(b),
        "examples": examples,
        "rows": {"a": manifest_counts(manifests["a"]), "b": manifest_counts(manifests["b"]),
                 **compare_fates(fates["a"], fates["b"], examples)},
        "captions": captions.to_dict(),
        "regions": regions.to_dict(),
        "provenance": compare_provenance(manifests["a"], manifests["b"]),
        "metrics": {"files": compare_metrics(reports_a, reports_b), "unreadable": unreadable_a + unreadable_b},
    }


def _fates(shard: CommittedShard) -> pl.DataFrame:
    return fate_frame(shard.shard_id, read_data(shard, ["key"]), read_rejects(shard, REJECT_COLUMNS))


def _fold_content(
    shards_a: list[CommittedShard], shards_b: list[CommittedShard], pairs: dict[str, list[str]],
    captions: CaptionTotals, regions: RegionTotals,
) -> None:
    """Per-side totals of every shard, and the comparison of each A shard with its B shards."""
    by_id = {shard.shard_id: shard for shard in shards_b}
    last_b: _Content | None = None
    folded_b: set[str] = set()
    for shard in shards_a:
        content_a = _Content(shard)
        _fold_side("a", content_a, captions, regions)
        for shard_b in pairs.get(shard.shard_id, []):
            if last_b is None or last_b.shard_id != shard_b:
                last_b = _Content(by_id[shard_b])
            if shard_b not in folded_b:
                _fold_side("b", last_b, captions, regions)
                folded_b.add(shard_b)
            common = content_a.keys.join(last_b.keys, on="key", how="inner")
            captions.add_pair(content_a.captions, last_b.captions, common)
            regions.add_pair(content_a.regions, last_b.regions, common)
    for shard in shards_b:
        if shard.shard_id not in folded_b:
            _fold_side("b", _Content(shard), captions, regions)


def _fold_side(side: str, content: _Content, captions: CaptionTotals, regions: RegionTotals) -> None:
    captions.add_side(side, content.captions)
    regions.add_side(side, content.regions)
