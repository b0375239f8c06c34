"""`finecap train STAGE ... --ray-address ADDR --nodes N`: one torchrun per node of a Ray cluster.

The trainer stays a plain torchrun command (Ray Train is not needed); Ray only places it. A
STRICT_SPREAD placement group reserves one bundle per node, so every node starts or none does;
node 0's address and a free port there become torchrun's master; one Ray task per bundle runs
`torchrun --nnodes N --node-rank I ...` and streams its output back, prefixed with the rank.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from finecap.errors import UserError

# argparse dest -> default when --ray-address is given (all default to None: "not asked for").
DEFAULTS = {"nodes": 1, "nproc_per_node": 1, "gpus_per_proc": 0.0, "cpus_per_proc": 1.0,
            "ray_timeout_s": 300.0}
TAIL_LINES = 25


class LaunchError(UserError, RuntimeError):
    """Why the nodes could not be started (one line), or which node failed (with its last lines)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("several nodes of a Ray cluster (one torchrun per node)")
    for flag, kind, metavar, text in (
        ("--ray-address", str, "ADDR", "Ray cluster to run on (`auto` inside `ray job submit`)"),
        ("--nodes", int, "N", "nodes, one torchrun each (default 1)"),
        ("--nproc-per-node", int, "P", "trainer processes per node (default 1)"),
        ("--gpus-per-proc", float, "G", "GPUs reserved per process (default 0)"),
        ("--cpus-per-proc", float, "C", "CPUs reserved per process (default 1)"),
        ("--ray-timeout-s", float, "S", "seconds to wait for the nodes to be placed (default 300)"),
    ):
        group.add_argument(flag, type=kind, metavar=metavar, help=text)


def wanted(args: argparse.Namespace) -> bool:
    """Any Ray flag given: the launcher runs (and refuses the flags without --ray-address)."""
    return args.ray_address is not None or any(getattr(args, k) is not None for k in DEFAULTS)


def in_job_working_dir() -> bool:
    """Inside `ray job submit --working-dir`, every task already runs in a copy of that dir."""
    config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    return bool((config.get("runtime_env") or {}).get("working_dir"))


def node_argv(args: argparse.Namespace, absolute: bool) -> list[str]:
    """The `finecap train` arguments every node runs: the Ray flags dropped. With `absolute` (a
    launch from a checkout), local paths become absolute so each task finds them whatever its
    working directory; the output always does, as the trainer creates it."""

    def where(value: str | None, output: bool = False) -> str | None:
        if value is None or not absolute or "://" in value:
            return value
        path = Path(value).expanduser()
        return str(path.resolve()) if output or path.exists() else value

    argv = ["--verbose"] if getattr(args, "verbose", False) else []
    argv += ["train", args.stage, "--config", where(args.config)]
    for flag, value in (("--data", where(args.data)), ("--output", where(args.output, output=True))):
        if value is not None:
            argv += [flag, value]
    for item in args.set:
        argv += ["--set", item]
    return argv


def _resources(res: dict) -> str:
    return "{" + ", ".join(f"{k}: {res.get(k, 0):g}" for k in ("CPU", "GPU")) + "}"


def _too_small(ray, n: int, bundle: dict, timeout: float) -> str:
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    have = "; ".join(f"{node['NodeManagerAddress']} {_resources(node['Resources'])}" for node in nodes)
    return (f"the Ray cluster could not place {n} node(s) x {_resources(bundle)} (one per node) within "
            f"{timeout:g} s; it has {len(nodes)} node(s): {have or 'none'} "
            f"(free now {_resources(ray.available_resources())})")


def _master() -> tuple[str, int]:
    """Runs on node 0: its address and a port free there for torchrun's rendezvous."""
    import ray

    with socket.socket() as s:
        s.bind(("", 0))
        return ray.util.get_node_ip_address(), s.getsockname()[1]


def die_with_parent(sig: int):
    """A function that makes the calling process get `sig` when its parent dies (prctl
    PR_SET_PDEATHSIG = 1). Usable as a preexec_fn: prctl is looked up here, before the fork."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, sig)


def _node(torchrun: list[str], env: dict[str, str], cwd: str | None):
    """Runs on one node: yields ("node", Ray node id), its torchrun's ("line", text)s, ("exit", code)."""
    import ray

    yield "node", ray.get_runtime_context().get_node_id()
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", *torchrun], env={**os.environ, **env},
        cwd=cwd if cwd and os.path.isdir(cwd) else None, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", bufsize=1, preexec_fn=die_with_parent(signal.SIGTERM))
    try:
        for line in proc.stdout:
            yield "line", line.rstrip("\n")
        yield "exit", proc.wait()
    finally:  # generator closed or cancelled early: SIGTERM (torchrun cleans up), then SIGKILL
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()


def _follow(ray, tasks: dict) -> None:
    """Print every node's lines as they come; on the first failure raise with that node's tail."""
    tails = {rank: collections.deque(maxlen=TAIL_LINES) for rank in tasks.values()}
    ids: dict[int, str] = {}
    reported: set[int] = set()  # torchrun reported a failed trainer: keep the trainer's lines, not the report
    while tasks:
        [task], _ = ray.wait(list(tasks), num_returns=1)
        rank = tasks[task]
        try:
            kind, value = ray.get(next(task))
        except StopIteration:
            del tasks[task]
            continue
        except ray.exceptions.RayError as exc:
            kind, value = "exit", str(exc).strip().splitlines()[-1]
        if kind == "node":
            ids[rank] = value
            print(f"[node {rank}] on Ray node {value}", flush=True)
        elif kind == "line":
            print(f"[node {rank}] {value}", flush=True)
            if rank not in reported:
                tails[rank].append(value)
            if "] failed (exitcode: " in value:
                reported.add(rank)
        elif value != 0:
            last = "\n".join(f"  {line}" for line in tails[rank])
            raise LaunchError(f"node {rank} (Ray node {ids.get(rank, '?')}) failed: {value}; "
                              f"its last lines:\n{last}")


def launch(args: argparse.Namespace) -> int:
    """Place the nodes, start torchrun on each, stream their output; LaunchError if any node fails."""
    if args.ray_address is None:
        raise LaunchError("--nodes, --nproc-per-node, --gpus-per-proc, --cpus-per-proc and --ray-timeout-s "
                          "need --ray-address")
    opts = {k: DEFAULTS[k] if getattr(args, k) is None else getattr(args, k) for k in DEFAULTS}
    n, per_node = opts["nodes"], opts["nproc_per_node"]
    per_proc = {"CPU": opts["cpus_per_proc"], "GPU": opts["gpus_per_proc"]}
    bundle = {k: v * per_node for k, v in per_proc.items() if v}
    if n < 1 or per_node < 1 or not bundle:
        raise LaunchError("--nodes, --nproc-per-node >= 1, and processes need CPUs or GPUs")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from finecap.runtime.ray_session import forwarded_env

    ray.init(address=args.ray_address, log_to_driver=False, logging_level=logging.WARNING)
    pg = placement_group([bundle] * n, strategy="STRICT_SPREAD")
    tasks: dict = {}
    try:
        if not pg.wait(timeout_seconds=opts["ray_timeout_s"]):
            raise LaunchError(_too_small(ray, n, bundle, opts["ray_timeout_s"]))

        def on(i: int) -> PlacementGroupSchedulingStrategy:
            return PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)

        addr, port = ray.get(ray.remote(_master).options(num_cpus=0, scheduling_strategy=on(0)).remote())
        in_job = in_job_working_dir()
        argv = node_argv(args, absolute=not in_job)
        env = forwarded_env()
        print(f"ray: {n} node(s) x {_resources(bundle)}, master {addr}:{port}", flush=True)
        node, cwd = ray.remote(_node), None if in_job else os.getcwd()
        for i in range(n):
            torchrun = ["--nnodes", str(n), "--node-rank", str(i), "--nproc-per-node", str(per_node),
                        "--master-addr", addr, "--master-port", str(port), "-m", __spec__.name, *argv]
            task = node.options(num_cpus=bundle.get("CPU", 0), num_gpus=bundle.get("GPU", 0), max_retries=0,
                                num_returns="streaming", scheduling_strategy=on(i))
            tasks[task.remote(torchrun, env, cwd)] = i
        _follow(ray, tasks)
        return 0
    finally:
        for task in tasks:  # still running: the worker dies, its torchrun and trainers with it
            ray.cancel(task, force=True)
        remove_placement_group(pg)
        ray.shutdown()


def _trainer() -> None:
    """Each trainer's entry under torchrun. Ray SIGKILLs a dead worker's children (torchrun), and
    torchrun starts trainers in their own sessions: without this they would outlive it, stuck in
    a collective. SIGKILL, as a trainer blocked in a collective never runs a Python handler."""
    parent = os.getppid()
    die_with_parent(signal.SIGKILL)()
    if os.getppid() != parent:  # torchrun died before prctl
        os._exit(1)
    from finecap import process
    from finecap.train.stage_command import trainer_main

    process.exit_with(lambda: trainer_main(sys.argv[1:]))


if __name__ == "__main__":
    _trainer()
