"""`finecap train ... --ray-address`: one torchrun per node of a real Ray cluster on 127.0.0.1.

The argument and death-signal tests need no cluster; the too-small error uses a one-node
cluster; the two-node run is slow (two `ray start`s, then two gloo ranks on a 2-core machine).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from finecap.cli import main, make_parser
from finecap.train.checkpoint import latest_checkpoint, read_state
from finecap.train.logs import read_trace
from finecap.train.ray_launch import in_job_working_dir, node_argv
from tests.stages.local_cluster import LocalCluster, _processes

from .conftest import REPO, TINY_YAML

TINY = ["stage2.init_from=null", "stage2.batch_size=5", "data.num_workers=0", "run.threads=1",
        "model.vision.layers=1", "model.tokenizer.train_rows=60", "data.trace=true"]


def _command(address: str, data, output, *flags: str, steps: int = 3) -> list[str]:
    cmd = [sys.executable, "-m", "finecap.cli", "train", "stage2", "--config", str(TINY_YAML),
           "--data", str(data), "--output", str(output), "--ray-address", address, *flags,
           "--set", f"stage2.steps={steps}"]
    return cmd + [a for s in TINY for a in ("--set", s)]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True  # gone


def _watch(tag: str, wait: float) -> tuple[set[int], list[int]]:
    """Follow the processes whose command line names `tag` (a run's output dir) until none is
    left or `wait` s pass. Returns the trainers seen outliving their torchrun for over a second
    (reparented: orphans) and the processes left."""
    orphaned: dict[int, float] = {}
    deadline = time.monotonic() + wait
    while True:
        procs = _processes()
        live = {pid: parent for pid, (parent, cmd) in procs.items() if tag in cmd and not _zombie(pid)}
        now = time.monotonic()
        for pid, parent in live.items():
            trainer = "ray_launch" in procs[pid][1] and "torch.distributed.run" not in procs[pid][1]
            if trainer and "torch.distributed.run" not in procs.get(parent, (0, ""))[1]:
                orphaned.setdefault(pid, now)
        if not live or now > deadline:
            return {pid for pid, since in orphaned.items() if now - since > 1.0}, sorted(live)
        time.sleep(0.2)


def test_node_arguments_drop_ray_flags_and_make_local_paths_absolute(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.yaml").write_text("{}\n")
    (tmp_path / "data").mkdir()
    args = make_parser().parse_args(
        ["train", "stage2", "--config", "train.yaml", "--data", "data", "--output", "out",
         "--set", "stage2.steps=3", "--ray-address", "auto", "--nodes", "4", "--nproc-per-node", "8",
         "--gpus-per-proc", "1", "--cpus-per-proc", "4", "--ray-timeout-s", "9"])
    tail = ["--set", "stage2.steps=3"]
    assert node_argv(args, absolute=True) == [
        "train", "stage2", "--config", str(tmp_path / "train.yaml"), "--data", str(tmp_path / "data"),
        "--output", str(tmp_path / "out"), *tail]
    # In a `ray job submit --working-dir` copy every task runs in its own copy: paths stay relative.
    assert node_argv(args, absolute=False) == [
        "train", "stage2", "--config", "train.yaml", "--data", "data", "--output", "out", *tail]
    # URIs, and inputs that exist only on the nodes, pass through.
    argv = ["train", "stage1", "--config", "/nodes/only.yaml", "--data", "s3://b/d", "--output", "s3://b/run"]
    assert node_argv(make_parser().parse_args(["-v", *argv]), absolute=True) == ["--verbose", *argv]

    job = {"runtime_env": {"working_dir": "gcs://_ray_pkg_0123.zip"}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    assert in_job_working_dir()
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": {}}))
    assert not in_job_working_dir()

    # Ray flags without a cluster are refused, not ignored.
    assert main(["train", "stage2", "--config", "train.yaml", "--nodes", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --nodes, --nproc-per-node") and "need --ray-address" in err, err


def test_the_torchrun_child_dies_with_its_ray_worker():
    # The same preexec_fn as a node task's: SIGKILL the parent, the child must follow.
    script = ("import signal, subprocess, time\nfrom finecap.train.ray_launch import die_with_parent\n"
              "child = subprocess.Popen(['sleep', '301'], preexec_fn=die_with_parent(signal.SIGTERM))\n"
              "print(child.pid, flush=True)\ntime.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _watch("sleep 301", 0)[1] == [child]
    finally:
        parent.kill()
        parent.wait()
    assert not _watch("sleep 301", 10)[1]


@pytest.mark.cluster
def test_a_cluster_too_small_fails_in_one_line_saying_what_it_has(tmp_path):
    with LocalCluster(nodes=1, cpus_per_node=1) as cluster:
        cmd = _command(cluster.address, tmp_path, tmp_path / "run", "--nodes", "2", "--ray-timeout-s", "1")
        done = subprocess.run(cmd, cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    error = done.stderr.strip().splitlines()[-1]
    expected = ("error: the Ray cluster could not place 2 node(s) x {CPU: 1, GPU: 0} (one per node) "
                "within 1 s; it has 1 node(s): IP {CPU: 1, GPU: 0} (free now {CPU: 1, GPU: 0})")
    assert re.fullmatch(re.escape(expected).replace("IP", r"[0-9.]+"), error), done.stderr
    assert not cluster.alive()


@pytest.mark.slow
@pytest.mark.cluster
def test_two_ray_nodes_run_one_torchrun_job(small_synth, tmp_path):
    run, failed, killed = tmp_path / "run", tmp_path / "failed", tmp_path / "killed"
    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        flags = ("--nodes", "2", "--nproc-per-node", "1")
        done = subprocess.run(_command(cluster.address, small_synth, run, *flags), cwd=REPO, env=cluster.env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        # Each node task reports the Ray node it runs on: two distinct nodes, one per rank.
        nodes = dict(re.findall(r"^\[node (\d)\] on Ray node ([0-9a-f]{56})$", done.stdout, re.M))
        assert sorted(nodes) == ["0", "1"] and len(set(nodes.values())) == 2, done.stdout[-3000:]
        assert done.stdout.count("[node 0] stage2: step 3,") == 1  # rank 0's summary, relayed
        state = read_state(latest_checkpoint(run / "stage2"))
        assert state["step"] == 3 and state["world"] == 2
        traces = [read_trace(run / "stage2" / "trace" / f"rank-{r}.jsonl") for r in (0, 1)]
        keys = [{k for entry in trace for k in entry["keys"]} for trace in traces]
        assert [len(t) for t in traces] == [3, 3] and keys[0] and keys[1] and not keys[0] & keys[1]

        # A failing node: nonzero, and the error names the node and shows its last lines.
        bad = subprocess.run(_command(cluster.address, tmp_path / "missing", failed, *flags), cwd=REPO,
                             env=cluster.env, capture_output=True, text=True, timeout=600)
        failure = r"^error: node \d \(Ray node [0-9a-f]+\) failed: \d+; its last lines:\n"
        assert bad.returncode == 2 and re.search(failure, bad.stderr, re.M), bad.stderr[-3000:]
        assert "no parquet files under" in bad.stderr  # the trainer's own error, not just torchrun's report

        # The launcher killed mid-run: Ray ends its workers, and torchrun and the trainers go too.
        with open(tmp_path / "killed.log", "w") as log:
            driver = subprocess.Popen(_command(cluster.address, small_synth, killed, *flags, steps=100_000),
                                      cwd=REPO, env=cluster.env, stdout=log, stderr=subprocess.STDOUT)
            trace = killed / "stage2" / "trace" / "rank-1.jsonl"
            deadline = time.monotonic() + 300
            while not (trace.exists() and trace.stat().st_size) and driver.poll() is None:
                assert time.monotonic() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
                time.sleep(0.5)
            assert driver.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            driver.kill()
            driver.wait()
        orphans, left = _watch(str(killed), 60)
        assert not orphans and not left, (tmp_path / "killed.log").read_text()[-3000:]
    assert not cluster.alive()
    assert not _watch(str(tmp_path), 0)[1]
