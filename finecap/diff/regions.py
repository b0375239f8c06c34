"""Regions of two outputs compared per origin (detector, ocr) and per category.

Each side counts its regions, captioned regions and categories. For rows kept in both, the
regions of a row are matched one to one by origin and box: two boxes are the same region when
every corner coordinate agrees within BBOX_TOLERANCE (a rebuild writes float32 boxes, so a
recomputed box of the same detection can differ in the last bits). Matched regions compare
their captions and categories; the unmatched ones are regions only A or only B has.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import polars as pl
import pyarrow as pa

from finecap.diff.tally import Tally

BBOX_TOLERANCE = 1e-4
CORNERS = ("x1", "y1", "x2", "y2")
ORIGINS = ("detector", "ocr")  # always reported, even when neither output has one of them
PAIR_TALLIES = ("only_a", "only_b", "caption_changed", "caption_added", "caption_removed", "category_changed")


def region_rows(data: pa.Table) -> pl.DataFrame:
    """One row per region: key, idx (its place in the row's list), origin ("(none)" if missing),
    category, caption, corners (null when the box has fewer than four)."""
    frame = pl.from_arrow(data.select(["key", "regions"])).explode("regions")
    frame = frame.with_columns(idx=pl.int_range(pl.len()).over("key"))
    frame = frame.filter(pl.col("regions").is_not_null()).unnest("regions")
    corners = [pl.col("bbox").list.get(i, null_on_oob=True).cast(pl.Float64).alias(c) for i, c in enumerate(CORNERS)]
    return frame.select("key", "idx", pl.col("origin").fill_null("(none)"), "category", "caption", *corners)


def match_regions(a: pl.DataFrame, b: pl.DataFrame, tolerance: float = BBOX_TOLERANCE) -> pl.DataFrame:
    """One-to-one matches (key, idx, idx_b) of `a`'s and `b`'s regions: same key, origin, box.

    Candidates are found by joining on a grid cell of x1 (B's regions are also offered to the two
    neighbouring cells, so no pair within tolerance is missed) instead of every region of a row
    against every other. A region with one candidate that has it as its only candidate is
    matched at once; the rest (near-identical boxes in one row) go greedily in list order."""
    cell = (pl.col("x1") / tolerance).floor().cast(pl.Int64)
    a = a.with_columns(cell=cell)
    b = b.with_columns(cell=pl.concat_list([cell - 1, cell, cell + 1])).explode("cell")
    candidates = a.join(b, on=["key", "origin", "cell"], how="inner", suffix="_b").filter(
        pl.all_horizontal([(pl.col(c) - pl.col(f"{c}_b")).abs() <= tolerance for c in CORNERS]))
    candidates = candidates.select("key", "idx", "idx_b").with_columns(
        n_a=pl.len().over(["key", "idx"]), n_b=pl.len().over(["key", "idx_b"]))
    alone = (pl.col("n_a") == 1) & (pl.col("n_b") == 1)
    matched = candidates.filter(alone).select("key", "idx", "idx_b")
    used_a, used_b, greedy = set(), set(), []
    for key, idx, idx_b in candidates.filter(~alone).sort(["key", "idx", "idx_b"]).select("key", "idx", "idx_b").iter_rows():
        if (key, idx) not in used_a and (key, idx_b) not in used_b:
            used_a.add((key, idx))
            used_b.add((key, idx_b))
            greedy.append((key, idx, idx_b))
    extra = pl.DataFrame(greedy, schema=matched.schema, orient="row")
    return pl.concat([matched, extra])


class RegionTotals:
    """Running region totals of both outputs and of their rows kept in both."""

    def __init__(self, examples: int) -> None:
        self.regions = {"a": Counter(), "b": Counter()}  # by origin
        self.captioned = {"a": Counter(), "b": Counter()}
        self.categories = {"a": defaultdict(Counter), "b": defaultdict(Counter)}  # origin -> category -> n
        self.matched: Counter = Counter()
        self.caption_identical: Counter = Counter()
        self.tallies = {name: Tally(examples) for name in PAIR_TALLIES}

    def add_side(self, side: str, regions: pl.DataFrame) -> None:
        """Fold one shard's region rows of output `side` ("a" or "b")."""
        captioned = _has_caption("caption").cast(pl.Int64)
        summary = regions.group_by("origin", "category").agg(n=pl.len(), captioned=captioned.sum())
        for origin, category, n, with_caption in summary.iter_rows():
            self.regions[side][origin] += n
            self.captioned[side][origin] += with_caption
            self.categories[side][origin][category or "(none)"] += n

    def add_pair(self, a: pl.DataFrame, b: pl.DataFrame, common: pl.DataFrame) -> None:
        """Match and compare the regions of keys in `common` (a `key` column): kept in both."""
        a = a.join(common, on="key", how="semi")
        b = b.join(common, on="key", how="semi")
        pairs = match_regions(a, b)
        both = pairs.join(a, on=["key", "idx"]).join(b.rename(lambda c: c if c == "key" else f"{c}_b"),
                                                      on=["key", "idx_b"])
        only_a = a.join(pairs, on=["key", "idx"], how="anti")
        only_b = b.join(pairs.select("key", idx="idx_b"), on=["key", "idx"], how="anti")
        cap_a, cap_b = _has_caption("caption"), _has_caption("caption_b")
        kinds = {
            "caption_changed": cap_a & cap_b & (pl.col("caption") != pl.col("caption_b")),
            "caption_added": ~cap_a & cap_b,
            "caption_removed": cap_a & ~cap_b,
            "category_changed": pl.col("category").ne_missing(pl.col("category_b")),
        }
        for (origin,), part in both.group_by("origin"):
            self.matched[origin] += part.height
            self.caption_identical[origin] += part.filter(cap_a & cap_b & (pl.col("caption") == pl.col("caption_b"))).height
            for name, condition in kinds.items():
                self.tallies[name].add(origin, part.filter(condition)["key"])
        self.tallies["only_a"].add_groups(only_a, "origin")
        self.tallies["only_b"].add_groups(only_b, "origin")

    def to_dict(self) -> dict:
        origins = sorted(set(ORIGINS) | set(self.regions["a"]) | set(self.regions["b"]))
        return {
            "by_origin": {o: {"regions": self._sides(self.regions, o), "captioned": self._sides(self.captioned, o)}
                          for o in origins},
            "by_category": {o: self._categories(o) for o in origins},
            "in_both": {o: {"matched": self.matched[o], "caption_identical": self.caption_identical[o],
                            **{name: self.tallies[name].entry(o) for name in PAIR_TALLIES}} for o in origins},
        }

    @staticmethod
    def _sides(counts: dict[str, Counter], origin: str) -> dict:
        return {"a": counts["a"][origin], "b": counts["b"][origin]}

    def _categories(self, origin: str) -> dict:
        """Every category of `origin` either side has, largest change first (then by name)."""
        a, b = self.categories["a"][origin], self.categories["b"][origin]
        names = sorted(set(a) | set(b), key=lambda c: (-abs(b[c] - a[c]), c))
        return {c: {"a": a[c], "b": b[c]} for c in names}


def _has_caption(column: str) -> pl.Expr:
    return pl.col(column).is_not_null() & (pl.col(column) != "")

