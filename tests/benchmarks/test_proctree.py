"""The process-tree sampler the CPU and memory benchmarks rely on: roles, CPU and peak RSS."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.proctree import TreeSampler, _role

CHILD = "import time; x = bytearray(160 * 2**20); t = time.process_time() + 0.3\nwhile time.process_time() < t: pass"


def test_child_memory_and_cpu_are_seen():
    with TreeSampler(interval=0.05) as sampler:
        subprocess.run([sys.executable, "-c", CHILD], check=True)
    children = [p for p in sampler.procs.values() if p.role != "driver"]
    assert len(children) == 1 and children[0].born
    assert children[0].peak_rss > 150 * 2**20
    cpu = sampler.cpu_by_role()
    assert cpu["ray_daemon"] >= 0.2  # a non-Ray child counts as a daemon
    peaks = sampler.peak_rss_by_role()
    assert peaks["ray_daemon"]["max_process_mib"] > 150 and peaks["driver"]["processes"] == 1


def test_roles_from_ray_titles_are_sticky():
    assert _role("", "/usr/bin/python", is_root=True) == "driver"
    assert _role("", "gcs_server", is_root=False) == "ray_daemon"
    assert _role("", "ray::DashboardAgent", is_root=False) == "ray_daemon"
    assert _role("", "ray::MapBatches(read_shards)", is_root=False) == "cpu_worker"
    assert _role("cpu_worker", "ray::MapWorker(MapBatches(StageActor))", is_root=False) == "model_actor"
    assert _role("model_actor", "ray::IDLE", is_root=False) == "model_actor"
