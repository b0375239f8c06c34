"""Resume rules: write only into FineCap outputs; find committed shards; start over on request.

An output is FineCap's when it holds the marker `_finecap.json` (written by every build since
the output lock landed) or, for outputs built before it, a `_manifest/*.json` with FineCap's
manifest fields. A folder holding only what a run writes before it commits anything (the lock,
the marker, staging) is one too. Anything else that is not empty is refused before any work,
and `--no-resume` deletes only the entries a FineCap output is made of.
"""

from __future__ import annotations

import json
import time

from finecap import __version__, storage
from finecap.dataset.layout import committed_manifests
from finecap.errors import UserError
from finecap.stages.write import STAGING

MARKER = "_finecap.json"
# Everything a build and the dataset passes write, including the report and card that describe
# the old data. Not the lock (the run deleting these holds it) nor the marker.
OUTPUT_DIRS = ("data", "rejects", "_manifest", "_versions", STAGING, "_dedup", "report", "balance", "README.md")
SCRATCH = {MARKER, "_lock.json", STAGING}
# What commit_shard writes into every manifest, whatever the run facts.
MANIFEST_FIELDS = {"shard", "rows_in", "rows_written", "rows_rejected", "files", "committed_at"}


class ResumeRefused(UserError, RuntimeError):
    """The run may not write this output as asked (another config, not a FineCap output, locked)."""


class NotAFinecapOutput(ResumeRefused):
    """The output folder holds files FineCap did not write."""


def check_ownership(output: str) -> None:
    """Raise NotAFinecapOutput unless `output` is missing, empty or a FineCap output."""
    names = set(storage.list_names(output))
    if names <= SCRATCH or MARKER in names or _has_finecap_manifest(output):
        return
    raise NotAFinecapOutput(
        f"{output} is not empty and is not a FineCap output (no {MARKER}, no FineCap manifests in "
        f"_manifest/; holds {', '.join(sorted(names)[:5])}): refusing to write into it, choose an empty folder"
    )


def _has_finecap_manifest(output: str) -> bool:
    for uri in storage.list_files(storage.join(output, "_manifest"), ".json")[:1]:
        try:
            manifest = json.loads(storage.read_bytes(uri))
        except ValueError:
            return False
        return isinstance(manifest, dict) and MANIFEST_FIELDS <= set(manifest)
    return False


def mark_output(output: str) -> None:
    """Write the marker that says FineCap owns `output` (once; later runs keep the first)."""
    uri = storage.join(output, MARKER)
    if not storage.exists(uri):
        marker = {"format": "finecap-output", "created_by": f"finecap {__version__}",
                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        storage.write_bytes(uri, json.dumps(marker, indent=2).encode())


def clear_stale_staging(output: str, run_id: str) -> None:
    """Delete the staging folders of other runs: called holding the lock, so those runs are gone."""
    root = storage.join(output, STAGING)
    for name in storage.list_names(root):
        if name != run_id:
            storage.remove(storage.join(root, name), recursive=True)


def committed_for_run(output: str, resume: bool) -> dict[str, dict]:
    """Manifests of the shards committed so far; with resume=False, wipe the output first.

    Which of them this run skips or rebuilds is the build plan's business (runtime/build_plan.py).
    Callers check ownership first (check_ownership) and hold the output lock.
    """
    if not resume:
        check_ownership(output)  # never delete what FineCap did not write
        for name in OUTPUT_DIRS:
            storage.remove(storage.join(output, name), recursive=True)
        return {}
    return committed_manifests(output)
