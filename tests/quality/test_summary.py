"""The signal summary of hand-built outputs: quantiles, flags and per-captioner figures worked out
by hand, on v3 rows with signals, v3 rows without them and v2 rows (which have no signals at all)."""

from __future__ import annotations

import numpy as np
import pytest

from finecap.quality.signals import FLAGS
from finecap.quality.summary import NO_SIGNALS, row_signal_names, signal_summary
from tests.quality.outputs import SIGNAL_NAMES, caption, signals, write_rows

GROUNDING = [0.2, 0.8, 0.5, 0.1, 1.0]  # rows 0-4; row 5 (v3) and the v2 rows have no signals


@pytest.fixture
def output(tmp_path) -> str:
    out = str(tmp_path / "out")
    cap_a = [caption("a red circle near a blue square", "cap-a", words=7, repetition=0.0, grounding_rate=0.5,
                     quotes=2, quotes_supported=1),
             caption("A red circle.", "cap-a", words=3, repetition=0.2, quotes=0)]  # OCR off: quotes unchecked
    write_rows(out, "part-000000", [
        {"captions": cap_a, "signals": signals(("low_grounding",), grounding_rate=0.2, phrases=5, grounded_phrases=1,
                                                min_caption_words=3, max_caption_words=7)},
        {"captions": [], "signals": signals(("repetitive", "low_grounding"), grounding_rate=0.8, repetition=0.5)},
        {"captions": [], "signals": signals(grounding_rate=0.5)},
    ])
    write_rows(out, "part-000001", [
        {"captions": [], "signals": signals(("low_grounding",), grounding_rate=0.1)},
        {"captions": [], "signals": signals(grounding_rate=1.0, region_agreement=0.25)},
        {"captions": [caption("red red red", "cap-b")], "signals": None},  # the quality stage did not run
    ])
    write_rows(out, "part-000002", [{"captions": [caption("Red square", "cap-b")]},
                                    {"captions": [caption("a blue circle", "cap-b")]}], version="v2")
    return out


def test_signal_names_come_from_the_schema():
    assert row_signal_names() == SIGNAL_NAMES


def test_row_signals_quantiles_and_counts(output):
    summary = signal_summary(output)
    assert (summary["rows"], summary["rows_with_signals"], summary["rows_flagged"]) == (8, 5, 3)
    assert "note" not in summary
    grounding = summary["signals"]["grounding_rate"]
    # sorted 0.1 0.2 0.5 0.8 1.0: p10 at rank 0.4 = 0.1 + 0.4 * 0.1; p90 at rank 3.6 = 0.8 + 0.6 * 0.2
    assert (grounding["count"], grounding["mean"], grounding["p10"], grounding["median"], grounding["p90"]) == (
        5, 0.52, 0.14, 0.5, 0.92)
    assert [grounding[k] for k in ("p10", "median", "p90")] == pytest.approx(np.percentile(GROUNDING, [10, 50, 90]))
    assert sum(grounding["histogram"]["counts"]) == 5 and grounding["histogram"]["counts"][-1] == 1  # 1.0: last bin
    assert (summary["signals"]["phrases"]["count"], summary["signals"]["phrases"]["median"]) == (1, 5)
    assert summary["signals"]["repetition"]["count"] == 1
    assert summary["signals"]["ocr_quote_support"] == {"count": 0, "p10": None, "median": None, "p90": None}
    assert set(summary["signals"]) == set(SIGNAL_NAMES)


def test_rows_per_flag_name_every_name_listed(output):
    flags = signal_summary(output)["flags"]
    assert set(flags) == set(FLAGS)
    assert list(flags.items())[:2] == [("low_grounding", 3), ("repetitive", 1)]
    assert sum(flags.values()) == 4


def test_per_captioner_means_quote_support_and_distinct_n(output):
    by = {c["model"]: c for c in signal_summary(output)["by_captioner"]}
    a = by["cap-a"]
    assert (a["captions"], a["with_signals"], a["mean_words"], a["mean_repetition"]) == (2, 2, 5.0, 0.1)
    assert (a["mean_grounding_rate"], a["quotes"], a["quote_support"]) == (0.5, 2, 0.5)
    # unigrams: 7 + 3, distinct a red circle near blue square = 6; bigrams: 6 + 2, distinct 6
    assert (a["distinct_1"], a["distinct_2"]) == (0.6, 0.75)
    b = by["cap-b"]  # one v3 row without signals, two v2 rows: counted, measured from the text only
    assert (b["captions"], b["with_signals"], b["mean_words"], b["quotes"], b["quote_support"]) == (3, 0, None, None, None)
    # red red red / red square / a blue circle: unigrams 3 + 2 + 3, distinct red square a blue circle
    assert (b["distinct_1"], b["distinct_2"]) == (0.625, 0.8)  # bigrams 2 + 1 + 2, distinct 4


def test_an_output_without_signals_says_so_and_counts_zero(tmp_path):
    out = str(tmp_path / "out")
    write_rows(out, "part-000000", [{"captions": [caption("a cat", "cap-b")]}, {"captions": []}], version="v2")
    summary = signal_summary(out)
    assert summary["note"] == NO_SIGNALS
    assert (summary["rows"], summary["rows_with_signals"], summary["rows_flagged"]) == (2, 0, 0)
    assert all(s["count"] == 0 and s["median"] is None for s in summary["signals"].values())
    assert set(summary["flags"].values()) == {0}
    (b,) = summary["by_captioner"]
    assert (b["captions"], b["mean_words"], b["distinct_1"], b["distinct_2"]) == (1, None, 1.0, 1.0)


def test_quantiles_stay_exact_to_the_rounding_over_many_rows(tmp_path):
    rng = np.random.default_rng(3)
    values = rng.random(3000).astype(np.float32)
    out = str(tmp_path / "out")
    for shard in range(3):
        rows = [{"captions": [], "signals": signals(repetition=float(v))} for v in values[shard * 1000:(shard + 1) * 1000]]
        write_rows(out, f"part-{shard:06d}", rows)
    repetition = signal_summary(out)["signals"]["repetition"]
    expected = np.percentile(np.round(values.astype(np.float64), 4), [10, 50, 90])
    assert [repetition[k] for k in ("p10", "median", "p90")] == pytest.approx(expected, abs=1e-4)
    assert repetition["mean"] == pytest.approx(float(values.mean()), abs=1e-4)


def test_distinct_n_streamed_over_shards_equals_eval_distinct_n(tmp_path):
    from finecap.quality.caption_metrics import distinct_n

    rng = np.random.default_rng(5)
    vocabulary = ["a", "red", "blue", "circle", "square", "near", "the", "ring's", "two-tone"]
    texts = [" ".join(rng.choice(vocabulary, int(rng.integers(0, 12)))) for _ in range(300)]
    out = str(tmp_path / "out")
    for shard in range(3):
        write_rows(out, f"part-{shard:06d}", [{"captions": [caption(t, "cap-a")]} for t in texts[shard::3]])
    (a,) = signal_summary(out)["by_captioner"]
    assert (a["distinct_1"], a["distinct_2"]) == (round(distinct_n(texts, 1), 4), round(distinct_n(texts, 2), 4))
