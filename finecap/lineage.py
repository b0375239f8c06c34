"""`finecap log OUT`: the versions of an output, newest first, with their lineage.

Each version names its parent, the stages it recomputed with the settings that changed, and
how many of the output's committed shards it wrote (dataset/versions.py keeps the records).
"""

from __future__ import annotations

import argparse
import json


def show_log(output: str, as_json: bool = False) -> str:
    from finecap.dataset.layout import committed_manifests
    from finecap.dataset.versions import current_shards, list_versions, log_lines

    manifests = committed_manifests(output)
    if as_json:
        current = current_shards(manifests)
        versions = [{**v, "current_shards": current.get(v["version"], 0)} for v in list_versions(output)]
        return json.dumps({"output": output, "versions": versions[::-1]})
    return "\n".join(log_lines(output, manifests))


def _log(args: argparse.Namespace) -> int:
    print(show_log(args.output, args.json))
    return 0


def add_parser(sub) -> None:
    log = sub.add_parser("log", help="the versions of an output: parent, recomputed stages, fingerprints")
    log.add_argument("output", help="a finecap output (URI)")
    log.add_argument("--json", action="store_true", help="print one JSON object")
    log.set_defaults(func=_log)
