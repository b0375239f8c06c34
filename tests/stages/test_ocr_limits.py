"""Images that made PP-OCRv4 raise or exhaust memory, through the ocr stage in a bounded process.

Each run is a child process (tests/stages/ocr_child.py) whose address space is capped once the
engine is loaded, so an image that asks for gigabytes fails there and not in the test runner, on
the old code as well. Extremely elongated images used to grow rapidocr's detector input without
bound (module doc of finecap/engines/ocr.py); now they are padded and read like any other. An
image the engine still raises on is that row's `ocr_error` reject; the other rows go on.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def run_ocr(rows: list[dict], budget_mib: int, *overrides: str) -> dict:
    spec = {"overrides": list(overrides), "budget_mib": budget_mib, "rows": rows}
    proc = subprocess.run([sys.executable, "-m", "tests.stages.ocr_child", json.dumps(spec)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out | {"rows": {r["key"]: r for r in out["rows"]}}


def test_extremely_elongated_images_are_read_within_a_memory_budget():
    # Before: the 1x500 image alone asked for a 3 GiB float array (the kernel's OOM killer took
    # the process without a cap), 2000x1 for 3 GB in cv2.
    rows = [{"key": "tall", "size": [1, 500]}, {"key": "wide", "size": [2000, 1]},
            {"key": "banner", "size": [1400, 60], "text": "HARBOR"}]
    out = run_ocr(rows, 1536)
    assert all(r["reject"] == [None, None, None] for r in out["rows"].values()), out
    assert out["rows"]["tall"]["texts"] == [] and out["rows"]["wide"]["texts"] == []
    banner = out["rows"]["banner"]
    assert banner["texts"] == ["HARBOR"]  # padding keeps the text, and its box is on the image
    assert all(0 <= v <= 1 for v in banner["boxes"][0]) and banner["boxes"][0][3] > 0.5


def test_an_image_the_engine_raises_on_is_an_ocr_error_reject_and_the_rest_go_on():
    # 8000x6000 read at full size (ocr.max_side=8000) with 1 GiB to spare: rapidocr's float copy of
    # it alone is 551 MiB, its detector much more: MemoryError inside the engine, for that row only.
    rows = [{"key": "sign", "size": [480, 120], "text": "Harbor"}, {"key": "huge", "size": [8000, 6000]}]
    out = run_ocr(rows, 1024, "ocr.max_side=8000")
    stage, reason, detail = out["rows"]["huge"]["reject"]
    assert (stage, reason) == ("ocr", "ocr_error") and detail.startswith("8000x6000: ")
    assert "Memory" in detail or "alloc" in detail.lower(), detail
    assert out["rows"]["sign"]["reject"] == [None, None, None] and out["rows"]["sign"]["texts"] == ["Harbor"]
