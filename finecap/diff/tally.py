"""Counts per label, each with a few example keys, for the `finecap diff` sections.

Examples are the smallest keys of a label, so two runs of the same diff print the same keys
whatever order the shards were read in.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict

import polars as pl


class Tally:
    """Running counts per label plus up to `limit` example keys per label."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: Counter = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, label: str, keys: pl.Series) -> None:
        """Count every entry of `keys` under `label` (a key may repeat: one per region); keep the
        smallest distinct keys as examples."""
        if not len(keys):
            return
        self.counts[label] += len(keys)
        head = keys.unique().sort().head(self.limit).to_list() if self.limit else []
        self.examples[label] = heapq.nsmallest(self.limit, set(self.examples[label]) | set(head))

    def add_groups(self, frame: pl.DataFrame, label: str) -> None:
        """`add` once per distinct value of column `label` of `frame` (which has a `key` column)."""
        for (value,), part in frame.group_by(label):
            self.add(value, part["key"])

    def entry(self, label: str) -> dict:
        return {"count": self.counts[label], "examples": list(self.examples[label])}

    def to_dict(self) -> dict:
        return {label: self.entry(label) for label in sorted(self.counts)}
