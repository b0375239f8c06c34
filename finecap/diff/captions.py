"""Global captions of two outputs compared per captioner.

A captioner is a caption's `model` with its `prompt_id` (the same model asked another way is
another captioner); `model_revision` is shown beside it, so a re-downloaded checkpoint that
changed its text is visible. Rows kept in both outputs are compared text to text; the rest
only feed each side's own counts and mean lengths.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import polars as pl
import pyarrow as pa

from finecap.diff.tally import Tally

CAPTIONER = ["model", "prompt_id"]
CHANGES = ("changed", "added", "removed")


def caption_rows(data: pa.Table) -> pl.DataFrame:
    """One row per (key, captioner): key, model, prompt_id, model_revision, text, num_tokens.

    A row carrying two captions from one captioner (not written by FineCap) keeps the first; a
    missing model or prompt id (validate reports it) is "(none)"."""
    frame = pl.from_arrow(data.select(["key", "captions"])).explode("captions")
    frame = frame.filter(pl.col("captions").is_not_null()).unnest("captions")
    frame = frame.select("key", "model", "prompt_id", "model_revision", "text", "num_tokens").with_columns(
        pl.col(CAPTIONER).fill_null("(none)"))
    return frame.unique(subset=["key", *CAPTIONER], keep="first", maintain_order=True)


class _Side:
    """One output's totals for one captioner."""

    def __init__(self) -> None:
        self.rows = 0
        self.chars = 0
        self.tokens = 0
        self.revisions: Counter = Counter()

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "mean_chars": round(self.chars / self.rows, 2) if self.rows else None,
            "mean_tokens": round(self.tokens / self.rows, 2) if self.rows else None,
            "revisions": dict(sorted(self.revisions.items())),
        }


class CaptionTotals:
    """Running per-captioner totals of both outputs and of their rows kept in both."""

    def __init__(self, examples: int) -> None:
        self.sides = {"a": defaultdict(_Side), "b": defaultdict(_Side)}
        self.identical: Counter = Counter()
        self.changes: dict[str, Tally] = {change: Tally(examples) for change in CHANGES}

    def add_side(self, side: str, captions: pl.DataFrame) -> None:
        """Fold one shard's caption rows of output `side` ("a" or "b")."""
        summary = captions.group_by(CAPTIONER).agg(
            rows=pl.len(), chars=pl.col("text").str.len_chars().sum(), tokens=pl.col("num_tokens").sum())
        for model, prompt_id, rows, chars, tokens in summary.iter_rows():
            entry = self.sides[side][(model, prompt_id)]
            entry.rows += rows
            entry.chars += chars or 0
            entry.tokens += tokens or 0
        for model, prompt_id, revision, n in captions.group_by([*CAPTIONER, "model_revision"]).len().iter_rows():
            self.sides[side][(model, prompt_id)].revisions[revision] += n

    def add_pair(self, a: pl.DataFrame, b: pl.DataFrame, common: pl.DataFrame) -> None:
        """Compare the caption rows of keys in `common` (a `key` column): kept in both outputs."""
        a = a.join(common, on="key", how="semi").with_columns(in_a=pl.lit(True))
        b = b.join(common, on="key", how="semi").with_columns(in_b=pl.lit(True))
        joined = a.join(b, on=["key", *CAPTIONER], how="full", coalesce=True, suffix="_b")
        in_a, in_b = pl.col("in_a").is_not_null(), pl.col("in_b").is_not_null()
        same = pl.col("text") == pl.col("text_b")
        kinds = {"changed": in_a & in_b & ~same, "added": ~in_a & in_b, "removed": in_a & ~in_b}
        for (model, prompt_id), part in joined.group_by(CAPTIONER):
            label = _label(model, prompt_id)
            self.identical[label] += part.filter(in_a & in_b & same).height
            for change, condition in kinds.items():
                self.changes[change].add(label, part.filter(condition)["key"])

    def to_dict(self) -> list[dict]:
        """One entry per captioner seen on either side, sorted by model then prompt."""
        entries = []
        for model, prompt_id in sorted(set(self.sides["a"]) | set(self.sides["b"])):
            label = _label(model, prompt_id)
            entries.append({
                "model": model,
                "prompt_id": prompt_id,
                "a": self.sides["a"][(model, prompt_id)].to_dict(),
                "b": self.sides["b"][(model, prompt_id)].to_dict(),
                "in_both": {"identical": self.identical[label],
                            **{change: self.changes[change].entry(label) for change in CHANGES}},
            })
        return entries


def _label(model: str, prompt_id: str) -> str:
    return f"{model}\x00{prompt_id}"  # a Tally label; NUL never occurs in a model name or prompt id
