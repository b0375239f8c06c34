"""Mergeable summaries of one number: count, sum, min, max and a fixed-edge histogram.

Statistics are gathered shard by shard and must not keep the values, so every summary has fixed
bin edges chosen up front: adding a shard only adds counts, and memory does not grow with rows.
Bin i holds edges[i] <= v < edges[i + 1]; the last bin is open above, the first takes anything
below edges[0].
"""

from __future__ import annotations

import numpy as np

TOKEN_EDGES = (0, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
COUNT_EDGES = (0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 128, 256)
SIDE_EDGES = (0, 128, 256, 384, 512, 640, 768, 1024, 1280, 1536, 2048, 3072, 4096, 8192)
MEGAPIXEL_EDGES = (0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 50)
UNIT_EDGES = tuple(round(i / 20, 2) for i in range(20))  # 0.00 .. 0.95, last bin holds 1.0
AREA_EDGES = (0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 0.9)
BLUR_EDGES = (0, 5, 10, 15, 25, 50, 100, 200, 400, 800, 1600, 3200, 6400)


class Numeric:
    """Running summary of a stream of numbers."""

    def __init__(self, edges: tuple[float, ...]):
        self.edges = np.asarray(edges, dtype=np.float64)
        self.counts = np.zeros(len(edges), dtype=np.int64)
        self.count = 0
        self.total = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def add(self, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        values = values[~np.isnan(values)]
        if not values.size:
            return
        bins = np.clip(np.searchsorted(self.edges, values, side="right") - 1, 0, len(self.edges) - 1)
        self.counts += np.bincount(bins, minlength=len(self.edges))
        self.count += int(values.size)
        self.total += float(values.sum())
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    def add_repeated(self, value: float, times: int) -> None:
        """`times` copies of one value without building them (zeros for shards lacking a kind)."""
        if times <= 0:
            return
        self.counts[self._bin(value)] += times
        self.count += times
        self.total += value * times
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def _bin(self, value: float) -> int:
        return int(np.clip(np.searchsorted(self.edges, value, side="right") - 1, 0, len(self.edges) - 1))

    def to_dict(self) -> dict:
        if not self.count:
            return {"count": 0}
        return {
            "count": self.count,
            "mean": round(self.total / self.count, 4),
            "min": _number(self.min),
            "max": _number(self.max),
            "histogram": {"edges": [_number(e) for e in self.edges], "counts": self.counts.tolist()},
        }


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 4)
