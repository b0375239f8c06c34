"""Stage III on an output with a balanced selection (OUT/balance): only the selected regions.

The selection (finecap/balance.py) caps frequent categories; training on every region would
undo it. Rows keep their other fields; a row's regions are cut to the selected ones (regions of
an origin the selection does not balance, OCR by default, are all kept). An output without a
selection, or a plain Parquet folder, is read as it is.
"""

from __future__ import annotations

from finecap.balance_selection import Selection, read_summary, selection_uri
from finecap.dataset import committed_shards, is_output
from finecap.train.shards import Unit


class BalancedRegions:
    """Cuts each row's regions to the selection, knowing each data file's shard."""

    def __init__(self, output: str):
        self.selection = Selection(selection_uri(output))
        self.shard_of = {shard.data_uri: shard.shard_id for shard in committed_shards(output)}

    def __call__(self, unit: Unit, row: dict) -> dict:
        shard = self.shard_of.get(unit.file)
        if shard is None or not row.get("regions"):
            return row
        return {**row, "regions": self.selection.filter_regions(shard, row["key"], row["regions"])}


def balanced_regions(uri: str) -> BalancedRegions | None:
    """The selection filter of the output at `uri`, or None when it has no complete selection."""
    if not is_output(uri) or read_summary(selection_uri(uri)) is None:
        return None
    return BalancedRegions(uri)
