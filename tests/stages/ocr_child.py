"""Runs the ocr stage on generated images in a process of its own (the test bounds its memory).

`python -m tests.stages.ocr_child SPEC` where SPEC is JSON: {"overrides": [...], "budget_mib": N,
"rows": [{"key", "size": [w, h], "text": optional word drawn at (20, 8)}]}. Once the engine is
loaded, the address space is limited to what the process holds then plus `budget_mib`, so the
budget means the same whatever the machine's baseline. Prints one JSON object: the rows out (key,
reject stage/reason/detail, OCR texts and boxes) and the peak resident memory in MiB.
"""

from __future__ import annotations

import io
import json
import resource
import sys

import pyarrow as pa
from PIL import Image, ImageDraw

from finecap.config import load_config
from finecap.samples.text import available_faces, load_font
from finecap.stages.ocr import OcrStage
from tests.conftest import LOCAL_YAML


def render(size: list[int], text: str | None) -> bytes:
    image = Image.new("RGB", tuple(size), (235, 235, 225))
    if text:
        ImageDraw.Draw(image).text((20, 8), text, font=load_font(available_faces()[0], 40), fill=(10, 10, 10))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def main(spec: dict) -> dict:
    config = load_config(LOCAL_YAML, spec.get("overrides", []))
    rows = spec["rows"]
    batch = pa.table({"key": [r["key"] for r in rows],
                      "image_bytes": pa.array([render(r["size"], r.get("text")) for r in rows], pa.binary())})
    stage = OcrStage(config)
    if spec.get("budget_mib"):
        limit = _address_space() + (spec["budget_mib"] << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = stage(batch).to_pylist()
    return {
        "rows": [{"key": r["key"], "reject": [r["reject_stage"], r["reject_reason"], r["reject_detail"]],
                  "texts": [g["ocr_text"] for g in r["regions"] or []],
                  "boxes": [g["bbox"] for g in r["regions"] or []]} for r in out],
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def _address_space() -> int:
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    return kib << 10


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
