"""Stage III reads the balanced selection when the output has one."""

from __future__ import annotations

from collections import Counter

from finecap.balance import balance
from finecap.train.balanced import balanced_regions
from finecap.train.shards import plan_units, stream_rows
from tests.test_balance import CAP, DISTRIBUTION, OCR_TEXT, write_output


def _category_counts(out, select) -> Counter:
    units = plan_units(str(out))
    rows = [row for row, _ in stream_rows(units, 0, 1, seed=0, epochs=1, select=select)]
    return Counter((r["origin"], r["category"]) for row in rows for r in row["regions"] if r["category"])


def test_only_selected_regions_reach_the_trainer_and_ocr_regions_all_do(tmp_path):
    out = tmp_path / "out"
    write_output(out)
    assert balanced_regions(str(out)) is None  # no selection yet: every region as it is
    everything = _category_counts(out, None)
    assert everything[("detector", "car")] == DISTRIBUTION["car"]
    balance(str(out), cap=CAP)
    picked = _category_counts(out, balanced_regions(str(out)))
    assert picked == {**{("detector", c): min(n, CAP) for c, n in DISTRIBUTION.items()}, ("ocr", "text"): OCR_TEXT}


def test_a_plain_parquet_folder_has_no_selection(tmp_path):
    write_output(tmp_path / "out")
    assert balanced_regions(str(tmp_path / "out" / "data")) is None
