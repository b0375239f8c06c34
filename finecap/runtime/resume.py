"""Resume rules: skip committed shards; refuse to mix outputs of different configs."""

from __future__ import annotations

from finecap import storage
from finecap.runtime.commit import committed_manifests

# Everything a build writes, including the report and card that describe the old data.
OUTPUT_DIRS = ("data", "rejects", "_manifest", "_staging", "report", "balance", "README.md")


class ResumeRefused(RuntimeError):
    """The output holds shards of another config and the run was not told to start over."""


def committed_for_run(output: str, config_hash: str, resume: bool) -> dict[str, dict]:
    """Manifests of shards this run may skip; with resume=False, wipe the output first."""
    if not resume:
        for name in OUTPUT_DIRS:
            storage.remove(storage.join(output, name), recursive=True)
        return {}
    manifests = committed_manifests(output)
    other = sorted({m["config_hash"] for m in manifests.values()} - {config_hash})
    if other:
        raise ResumeRefused(
            f"{output} holds shards built with config {', '.join(other)}, this run has {config_hash}; "
            "rerun with the same config to resume, or pass --no-resume to start over (deletes them)"
        )
    return manifests
