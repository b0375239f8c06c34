"""The balance pass on a synthetic category distribution: caps, rare categories, determinism."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finecap import balance as balance_module
from finecap.balance import BalanceError, balance
from finecap.cli import main
from finecap.schema import conform, load_schema

# Instances per category: two above the cap of 50, the rest at or under it.
DISTRIBUTION = {"car": 400, "person": 130, "dog": 50, "bicycle": 17, "zebra": 2}
OCR_TEXT = 90  # "text" regions from OCR
CAP = 50


def _region(category: str, origin: str) -> dict:
    return {"bbox": [0.1, 0.1, 0.5, 0.5], "phrase": category, "category": category, "score": 0.9,
            "origin": origin, "caption": None, "caption_model": None,
            "ocr_text": "EXIT" if origin == "ocr" else None}


def write_output(root: Path, seed: int = 0, shuffle_rows: bool = False) -> dict[tuple[str, int], str]:
    """A 4-shard finecap output holding DISTRIBUTION; returns {(key, region index): category}."""
    rng = random.Random(seed)
    pool = [(c, "detector") for c, n in DISTRIBUTION.items() for _ in range(n)] + [("text", "ocr")] * OCR_TEXT
    pool.append((None, "detector"))  # a region without a category is never counted
    rng.shuffle(pool)
    rows, truth = [], {}
    while pool:
        n = rng.randint(0, 9)  # some images have no regions at all
        take, pool = pool[:n], pool[n:]
        key = f"img-{len(rows):04d}"
        rows.append({"key": key, "regions": [_region(c, o) for c, o in take]})
        truth.update({(key, i): c for i, (c, _) in enumerate(take) if c})
    schema = load_schema().arrow
    for s in range(4):
        part = rows[s::4]
        if shuffle_rows:
            part = part[::-1]
        shard = f"part-{s:06d}"
        table = pa.Table.from_pylist(part, schema=pa.schema([schema.field("key"), schema.field("regions")]))
        buffer = io.BytesIO()
        pq.write_table(conform(table, schema), buffer)
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "_manifest").mkdir(exist_ok=True)
        (root / "data" / f"{shard}.parquet").write_bytes(buffer.getvalue())
        (root / "_manifest" / f"{shard}.json").write_text(json.dumps({"shard": shard, "config_hash": "sha256:t"}))
    return truth


def read_selection(out: Path) -> pl.DataFrame:
    files = sorted((out / "selection").glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]).sort(["key", "region"])


@pytest.fixture
def output(tmp_path):
    truth = write_output(tmp_path / "out")
    return tmp_path / "out", truth


def test_caps_frequent_categories_and_keeps_rare_ones_whole(output):
    out, truth = output
    summary = balance(str(out), cap=CAP, origins=["detector", "ocr"])
    selection = read_selection(out / "balance")
    counts = Counter(selection["category"].to_list())
    expected = {**DISTRIBUTION, "text": OCR_TEXT}
    assert counts == {c: min(n, CAP) for c, n in expected.items()}
    assert summary.capped_categories == 3 and summary.regions == sum(expected.values())
    assert summary.selected == selection.height
    # Every selected pair names a real region of that category; rare categories are all there.
    for key, region, category, _origin in selection.iter_rows():
        assert truth[(key, region)] == category
    picked = set(zip(selection["key"].to_list(), selection["region"].to_list(), strict=True))
    for category in ("dog", "bicycle", "zebra"):
        assert {p for p, c in truth.items() if c == category} <= picked
    categories = pl.read_parquet(out / "balance" / "categories.parquet")
    assert categories.row(0, named=True) == {"category": "car", "instances": 400, "selected": CAP}
    assert json.loads((out / "balance" / "summary.json").read_text())["cap"] == CAP


def test_same_input_same_selection_whatever_the_row_order(tmp_path):
    write_output(tmp_path / "a")
    write_output(tmp_path / "b", shuffle_rows=True)
    first_summary = balance(str(tmp_path / "a"), cap=CAP)
    assert balance(str(tmp_path / "b"), cap=CAP).digest == first_summary.digest
    again = balance(str(tmp_path / "a"), cap=CAP, out=str(tmp_path / "again"))
    first = read_selection(tmp_path / "a" / "balance")
    assert first.equals(read_selection(tmp_path / "b" / "balance"))
    assert first.equals(read_selection(tmp_path / "again")) and again.selected == first.height


def test_another_seed_picks_other_instances_of_capped_categories_only(output):
    out, _ = output
    both = ["detector", "ocr"]
    s0_summary = balance(str(out), cap=CAP, seed=0, origins=both, out=str(out / "s0"))
    assert balance(str(out), cap=CAP, seed=1, origins=both, out=str(out / "s1")).digest != s0_summary.digest
    s0, s1 = read_selection(out / "s0"), read_selection(out / "s1")
    for category, n in {**DISTRIBUTION, "text": OCR_TEXT}.items():
        a = s0.filter(pl.col("category") == category)
        b = s1.filter(pl.col("category") == category)
        assert a.height == b.height
        assert a.equals(b) == (n <= CAP), category


def test_short_candidate_lists_are_rescanned_to_the_exact_selection(output, monkeypatch):
    out, _ = output
    balance(str(out), cap=CAP, out=str(out / "normal"))
    monkeypatch.setattr(balance_module, "MARGIN", 0.01)  # the first pass finds too few candidates
    balance(str(out), cap=CAP, out=str(out / "narrow"))
    assert read_selection(out / "normal").equals(read_selection(out / "narrow"))


def test_ocr_regions_are_exempt_unless_asked_for_and_the_command_line(output, capsys):
    out, _ = output
    assert main(["balance", str(out), "--cap", str(CAP)]) == 0
    assert "categories capped at 50" in capsys.readouterr().out
    summary = json.loads((out / "balance" / "summary.json").read_text())
    assert summary["origins"] == ["detector"] and "text" not in read_selection(out / "balance")["category"].to_list()
    assert summary["selected_by_origin"] == {"detector": 50 + 50 + 50 + 17 + 2}
    assert main(["balance", str(out), "--cap", str(CAP), "--origin", "ocr", "--origin", "detector"]) == 0
    summary = json.loads((out / "balance" / "summary.json").read_text())
    assert summary["selected_by_origin"] == {"detector": 169, "ocr": CAP}
    assert main(["balance", str(out), "--cap", "0"]) == 2
    assert main(["balance", str(out), "--cap", "10", "--keep-below", "-1"]) == 2
    assert main(["balance", str(out / "nothing-here")]) == 2


def test_keep_below_keeps_small_categories_whole_and_the_summary_says_what_was_read(output):
    out, _ = output
    summary = balance(str(out), cap=17, keep_below=100)  # dog (50) is above the cap but under 100
    counts = Counter(read_selection(out / "balance")["category"].to_list())
    assert counts == {"car": 17, "person": 17, "dog": 50, "bicycle": 17, "zebra": 2}
    assert summary.capped_categories == 2
    assert summary.images == 0  # the fixture's manifests carry no counts; a build's do
    assert set(summary.inputs) == {f"part-{s:06d}" for s in range(4)} and summary.digest.startswith("sha256:")


def test_image_bytes_are_not_rewritten(output):
    out, _ = output
    before = {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    balance(str(out), cap=CAP)
    assert {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()} == before
    with pytest.raises(BalanceError):
        balance(str(out), cap=0)


def test_only_the_files_the_manifests_name_are_read(output):
    out, _ = output
    before = balance(str(out), cap=CAP, out=str(out / "before"))
    # a shard still being written, and a rebuilt shard's new version under a new name
    (out / "data" / "part-000009.parquet").write_bytes(b"not parquet: reading it would fail")
    old = out / "data" / "part-000000.parquet"
    old.rename(out / "data" / "part-000000-r2.parquet")
    old.write_bytes(b"the replaced version: never read")
    manifest = json.loads((out / "_manifest" / "part-000000.json").read_text())
    manifest["files"] = {"data": "data/part-000000-r2.parquet", "rejects": "rejects/part-000000-r2.parquet"}
    (out / "_manifest" / "part-000000.json").write_text(json.dumps(manifest))
    after = balance(str(out), cap=CAP, out=str(out / "after"))
    assert (after.regions, after.selected) == (before.regions, before.selected)
    assert read_selection(out / "after").equals(read_selection(out / "before"))
