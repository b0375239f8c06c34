"""The quality signals of a whole output, summarised: per row signal and per captioner.

The quality stage writes signals per row and per caption (schema v3, quality/signals.py); this
pass reads them back, shard by shard, reading only `captions` and `signals`:
- each numeric row signal: how many rows measured it, mean, p10, median, p90 and a fixed-edge
  histogram for the report's plot. Quantiles come from counts of values rounded to 4 decimals
  (the shares are float32 in [0, 1], the rest whole numbers), so they are exact to 1e-4 and the
  memory is bounded by the distinct values, not the rows;
- rows per flag name, and rows with any flag;
- per captioner (model, model_revision, prompt_id): captions, the means of its captions' words,
  repetition and grounding rate, the share of its quotes OCR supports, and distinct-1/2 (distinct
  word n-grams / all n-grams over its captions: caption_metrics.distinct_n's figure, streamed as
  64-bit hashes (quality/tally.py: 8 bytes a distinct n-gram) instead of a set of every n-gram).
Older outputs (v1, v2) and builds without the quality stage have no signals: every count is 0,
the means are None, `note` says why. Distinct-n needs only the text, so it is measured there too.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from finecap.dataset import CommittedShard, committed_shards, iter_committed
from finecap.quality.duplicates import CAPTIONER, caption_fields
from finecap.quality.signals import FLAGS
from finecap.quality.tally import DistinctHashes
from finecap.quality.vocabulary import word_tokens
from finecap.report import hist
from finecap.report.hist import Numeric
from finecap.schema import load_schema

QUANTILES = {"p10": 0.1, "median": 0.5, "p90": 0.9}
DISTINCT_N = (1, 2)
NO_SIGNALS = ("no quality signals: the quality stage did not run on these rows (written before schema v3, "
              "or built with quality.enabled false)")


@cache
def row_signal_names() -> tuple[str, ...]:
    """The numeric fields of the row `signals` struct (the current schema), in schema order."""
    return tuple(f.name for f in load_schema().arrow.field("signals").type if not pa.types.is_list(f.type))


def _edges(name: str) -> tuple[float, ...]:
    kind = load_schema().arrow.field("signals").type.field(name).type
    if pa.types.is_floating(kind):
        return hist.UNIT_EDGES  # every float signal is a share in [0, 1]
    return hist.TOKEN_EDGES if "words" in name else hist.COUNT_EDGES


class Distribution:
    """One signal over the rows: running summary and histogram, and counts of rounded values."""

    def __init__(self, edges: tuple[float, ...]) -> None:
        self.summary = Numeric(edges)
        self.values: Counter = Counter()

    def add(self, values: np.ndarray) -> None:
        self.summary.add(values)
        distinct, counts = np.unique(np.round(values, 4), return_counts=True)
        self.values.update(dict(zip(distinct.tolist(), counts.tolist(), strict=True)))

    def quantile(self, q: float) -> float | None:
        """numpy's default (linear) quantile of the rounded values."""
        if not self.values:
            return None
        values = np.array(sorted(self.values))
        ends = np.cumsum([self.values[v] for v in values])  # ranks < ends[i] hold values[i]
        position = q * (ends[-1] - 1)
        below, above = np.floor(position), np.ceil(position)
        low = values[np.searchsorted(ends, below, side="right")]
        high = values[np.searchsorted(ends, above, side="right")]
        return round(float(low + (high - low) * (position - below)), 4)

    def to_dict(self) -> dict:
        summary = self.summary.to_dict()
        return {**summary, **{name: self.quantile(q) for name, q in QUANTILES.items()}}


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


class _Captioner:
    """Running sums of one captioner's captions."""

    def __init__(self) -> None:
        self.captions = 0
        self.with_signals = 0
        self.sums: Counter = Counter()  # words, repetition, grounding_rate, quotes, quotes_supported
        self.measured: Counter = Counter()  # how many captions each sum is over
        self.ngrams: Counter = Counter()  # n -> n-grams seen
        self.distinct = {n: DistinctHashes() for n in DISTINCT_N}
        # This shard's words (hashed) and the caption each belongs to, not yet tallied. Built-in
        # hash: a str caches it, and the count of distinct values does not depend on the
        # per-process salt (collisions among 2^64 values aside).
        self._words: list[int] = []
        self._caption_of: list[int] = []

    def add(self, text: str | None, signals: dict | None) -> None:
        self.captions += 1
        tokens = word_tokens(text or "")  # the words eval's caption_metrics.distinct_n counts
        self._words += map(hash, tokens)  # signed: viewed as uint64 in flush
        self._caption_of += [self.captions] * len(tokens)
        if signals is None:
            return
        self.with_signals += 1
        for name in ("words", "repetition", "grounding_rate"):
            if signals.get(name) is not None:
                self.sums[name] += signals[name]
                self.measured[name] += 1
        if signals.get("quotes_supported") is not None:  # OCR ran: quotes can be checked
            self.sums["quotes"] += signals.get("quotes") or 0
            self.sums["quotes_supported"] += signals["quotes_supported"]
            self.measured["quotes"] += 1

    def flush(self) -> None:
        """Tally the n-grams of the words gathered since the last flush (once a shard), in numpy:
        an n-gram's hash folds its words' hashes; n-grams never span two captions. Hashing each
        n-gram's tuple in Python took 2.4 s of the pass's 6.6 s over 60k 30-word captions
        (cProfile); folded here, the whole pass took 4.1 s."""
        words, caption_of = np.array(self._words, np.int64).view(np.uint64), np.array(self._caption_of, np.int64)
        for n in DISTINCT_N:
            span = words.size - n + 1
            if span <= 0:
                continue
            grams = words[:span]
            for k in range(1, n):
                grams = _mix(_mix(grams) ^ words[k : k + span])
            grams = grams[caption_of[:span] == caption_of[n - 1 : n - 1 + span]]
            self.ngrams[n] += grams.size
            self.distinct[n].add(grams)
        self._words, self._caption_of = [], []

    def to_dict(self) -> dict:
        self.flush()

        def mean(name: str) -> float | None:
            return round(self.sums[name] / self.measured[name], 4) if self.measured[name] else None

        quotes = self.sums["quotes"]
        return {
            "captions": self.captions,
            "with_signals": self.with_signals,
            "mean_words": mean("words"),
            "mean_repetition": mean("repetition"),
            "mean_grounding_rate": mean("grounding_rate"),
            "quotes": int(quotes) if self.measured["quotes"] else None,  # those OCR could check
            "quote_support": round(self.sums["quotes_supported"] / quotes, 4) if quotes else None,
            **{f"distinct_{n}": round(self.distinct[n].distinct() / self.ngrams[n], 4) if self.ngrams[n] else None
               for n in DISTINCT_N},
        }


class _Totals:
    def __init__(self) -> None:
        self.rows = 0
        self.with_signals = 0
        self.flagged = 0
        self.flags: Counter = Counter({name: 0 for name in FLAGS})
        self.signals = {name: Distribution(_edges(name)) for name in row_signal_names()}
        self.captioners: dict[tuple, _Captioner] = defaultdict(_Captioner)

    def add_shard(self, data: pa.Table) -> None:
        self.rows += data.num_rows
        signals = data.column("signals")
        self.with_signals += data.num_rows - signals.null_count
        for name, distribution in self.signals.items():
            values = pc.drop_null(pc.struct_field(signals, name)).cast(pa.float64()).to_numpy()
            if values.size:
                distribution.add(values)
        for flags in pc.struct_field(signals, "flags").to_pylist():
            self.flagged += bool(flags)
            self.flags.update(set(flags or ()))
        fields = caption_fields(data, ("text", "signals", *CAPTIONER))
        for i, text in enumerate(fields["text"]):
            self.captioners[tuple(fields[name][i] for name in CAPTIONER)].add(text, fields["signals"][i])
        for captioner in self.captioners.values():
            captioner.flush()

    def to_dict(self) -> dict:
        out = {
            "rows": self.rows,
            "rows_with_signals": self.with_signals,
            "rows_flagged": self.flagged,
            "flags": dict(sorted(self.flags.items(), key=lambda kv: (-kv[1], kv[0]))),
            "signals": {name: d.to_dict() for name, d in self.signals.items()},
            "by_captioner": [{**dict(zip(CAPTIONER, key, strict=True)), **c.to_dict()}
                             for key, c in sorted(self.captioners.items())],
        }
        return {**out, "note": NO_SIGNALS} if not self.with_signals else out


def signal_summary(output: str, shards: list[CommittedShard] | None = None) -> dict:
    """Summary of the quality signals of every committed shard of `output` (see the module doc)."""
    totals = _Totals()
    shards = committed_shards(output) if shards is None else shards
    for _, data in iter_committed(output, ["captions", "signals"], shards=shards):
        totals.add_shard(data)
    return totals.to_dict()
