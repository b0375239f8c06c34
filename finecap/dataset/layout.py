"""Where a FineCap output keeps its files, and which shards it has committed.

    OUT/data/SHARD.parquet      OUT/rejects/SHARD.parquet      OUT/_manifest/SHARD.json

A shard is committed once its manifest exists (written last, by runtime/commit.py); readers of
outputs (validate, report, balance, dedup) find shards here and never import the pipeline.
The names above are the defaults: a manifest's `files` names the files that hold its shard (a
rebuilt shard's new version has a new name), so readers go through dataset/reader.py.
"""

from __future__ import annotations

import json

from finecap import storage


def data_uri(output: str, shard_id: str) -> str:
    return storage.join(output, "data", f"{shard_id}.parquet")


def rejects_uri(output: str, shard_id: str) -> str:
    return storage.join(output, "rejects", f"{shard_id}.parquet")


def manifest_uri(output: str, shard_id: str) -> str:
    return storage.join(output, "_manifest", f"{shard_id}.json")


def committed_manifests(output: str) -> dict[str, dict]:
    """Manifests of the shards committed under `output`, by shard id."""
    manifests = {}
    for uri in storage.list_files(storage.join(output, "_manifest"), ".json"):
        manifest = json.loads(storage.read_bytes(uri))
        manifests[manifest["shard"]] = manifest
    return manifests
