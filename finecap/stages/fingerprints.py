"""Per-stage fingerprints: what each stage's output depends on, hashed.

A stage's fingerprint is a hash of its name, its semantic settings (`Stage.semantic`: model and
revision, prompt text, thresholds, sampling; never resources, devices, endpoints, retries or
thread counts) and the fingerprints of the stages it reads (`Stage.inputs`), rooted at the
source's. So a change reaches exactly the stages downstream of it in the data flow: a new region
prompt changes `regions` only; a new detector threshold changes `detect` and `regions`, not
`caption` or `ocr`. Manifests and version records keep every stage's fingerprint and settings,
so a rebuild can say which setting changed (runtime/rebuild.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from finecap.config import PipelineConfig
from finecap.redact import public_uri
from finecap.sources.detect import peek_kind
from finecap.stages import pipeline_stages

SOURCE = "source"


@dataclass(frozen=True)
class StagePrint:
    """One stage's fingerprint, with what it was computed from."""

    stage: str
    fingerprint: str
    inputs: tuple[str, ...] = ()
    settings: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "inputs": list(self.inputs), "settings": self.settings}

    @classmethod
    def from_json(cls, stage: str, data: dict) -> StagePrint:
        return cls(stage, data["fingerprint"], tuple(data.get("inputs", ())), data.get("settings", {}))


def source_settings(config: PipelineConfig) -> dict:
    """What decides which rows a build starts from (the source's identity and shard plan)."""
    s = config.source
    # The kind the input is (auto resolved), so `auto` and the explicit kind hash the same.
    return {"kind": peek_kind(s) or s.kind, "uri": public_uri(s.uri), "shard_size": s.shard_size, "limit": s.limit,
            "extensions": list(s.extensions), "format": s.format, "url_col": s.url_col,
            "caption_col": s.caption_col}


def digest(stage: str, settings: dict, inputs: dict[str, str]) -> str:
    blob = json.dumps({"stage": stage, "settings": settings, "inputs": inputs}, sort_keys=True,
                      separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:16]


def pipeline_prints(config: PipelineConfig, source: StagePrint | None = None) -> dict[str, StagePrint]:
    """Fingerprints of the source and every enabled stage, in pipeline order.

    `source` replaces the source's own print: a build from an earlier output keeps that output's
    source fingerprint, so its unchanged stages match.
    """
    if source is None:
        settings = source_settings(config)
        source = StagePrint(SOURCE, digest(SOURCE, settings, {}), (), settings)
    prints = {SOURCE: source}
    for stage_cls, _ in pipeline_stages(config):
        if stage_cls.name in prints:
            continue  # one caption stage per captioner, one fingerprint for them all
        inputs = tuple(name for name in stage_cls.inputs(config) if name in prints)
        settings = stage_cls.semantic(config)
        fingerprint = digest(stage_cls.name, settings, {name: prints[name].fingerprint for name in inputs})
        prints[stage_cls.name] = StagePrint(stage_cls.name, fingerprint, inputs, settings)
    return prints


def fingerprints_of(prints: dict[str, StagePrint]) -> dict[str, str]:
    """{stage: fingerprint}: what manifests, rows and version records carry."""
    return {name: p.fingerprint for name, p in prints.items()}


def prints_hash(prints: dict[str, StagePrint]) -> str:
    """One hash of all fingerprints: the config hash of provenance (covers only what shapes rows)."""
    blob = json.dumps(fingerprints_of(prints), sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:16]


def config_hash(config: PipelineConfig) -> str:
    """The hash provenance records for a config: of its stages' fingerprints, nothing else."""
    return prints_hash(pipeline_prints(config))


def changed_settings(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two settings dicts, as `key: old -> new`."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_settings(a, b, f"{name}.")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(
                isinstance(x, dict) for x in a + b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                out += changed_settings(x, y, f"{name}.{i}.")
        elif a != b:
            out.append(f"{name}: {_short(a)} -> {_short(b)}")
    return out


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
