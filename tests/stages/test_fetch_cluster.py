"""Fetch spreads over a Ray cluster's nodes: a two-node cluster on 127.0.0.1 (`ray start`),
`finecap build --ray-address`, and the test server checks which node each request came from."""

from __future__ import annotations

import collections
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import LOCAL_YAML, REPO
from tests.fetch.server import HostileServer, image_bytes
from tests.stages.local_cluster import LocalCluster, raylet_of

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

SETTINGS = ["source.kind=urls", "source.shard_size=8", "caption.enabled=false", "phrases.enabled=false",
            "detect.enabled=false", "ocr.enabled=false", "regions.enabled=false", "filter.min_short_side=64",
            "fetch.allow_private_addresses=true", "fetch.timeout_s=5", "fetch.resources.batch_size=8",
            "fetch.resources.concurrency=8", "fetch.resources.num_cpus=0.5", "fetch.thread_count=2",
            "prepare.resources.num_cpus=0.5"]


def test_fetch_runs_on_every_node_of_a_cluster(tmp_path):
    # For each request, the raylet (node) of the process that made it, found while it is connected.
    with HostileServer(probe=raylet_of) as server, LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        # Slow answers keep several fetch tasks in flight at once, as on the web: more than one
        # node's CPUs can hold (1 CPU / 0.5 per task), so Ray must place some on the other node.
        # Two requests at a time make each task last ~4 s, so tasks overlap even on a loaded
        # machine (with 32 threads a task took ~1 s, and once CI saw every task on one node).
        urls = [server.url(f"delay/{i}") for i in range(64)] + [server.url("status404/1")]
        pq.write_table(pa.table({"url": urls}), tmp_path / "urls.parquet")
        out = tmp_path / "out"
        sets = [a for s in SETTINGS for a in ("--set", s)]
        cmd = [sys.executable, "-m", "finecap.cli", "build", "--config", str(LOCAL_YAML), "--input",
               str(tmp_path / "urls.parquet"), "--output", str(out), "--ray-address", cluster.address, *sets]
        proc = subprocess.run(cmd, cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        per_node = collections.Counter(server.state.clients)
        print(f"requests per node: {dict(per_node)}")
        raylets = cluster.raylets()
        assert len(raylets) == 2
        assert set(per_node) == raylets, f"requests per node {dict(per_node)}, the cluster has {raylets}"
        check = subprocess.run([sys.executable, "-m", "finecap.cli", "validate", str(out)], cwd=REPO,
                               capture_output=True, text=True, timeout=300)
        assert check.returncode == 0 and check.stdout.startswith("OK:"), check.stdout
        rejects = pq.read_table(out / "rejects").to_pylist()
        assert [(r["stage"], r["reason"]) for r in rejects] == [("fetch", "http_404")]
        data = pq.read_table(out / "data").to_pylist()
        assert len(data) == 64 and all(r["image"]["bytes"] == image_bytes(int(r["url"].rsplit("/", 1)[1]))
                                       for r in data)
    assert not cluster.alive()  # every process the cluster started is gone
