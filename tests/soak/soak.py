"""The soak: URLs on loopback through the whole pipeline while its workers are SIGKILLed.

    python -m tests.soak.soak --urls 2000 --kills 12 --max-minutes 60     (make soak)

Serves sample scenes (good URLs) and the hostile server's failures (dripping, endless 1xx,
resets, loops, ...) on 127.0.0.1, builds them with `pipelines/local.yaml` (every stage: fetch,
prepare, captions, phrases, detect, OCR, region captions, dedup), SIGKILLs random Ray workers
while it runs and the driver once, then runs the same command again. It passes when the rerun
exits 0, `finecap validate` says OK, every input key is in the output exactly once (a data row
or a reject row), and neither a Ray process nor the output's lock is left. Then it changes a
region setting and rebuilds: the rebuild's driver is SIGKILLed mid-way, and the rerun must finish
it with only the regions stage recomputed (and the quality stage that reads it), every global
caption unchanged and the same checks.
Exit status 0 on success, 1 with the first failed check otherwise; the whole run is bounded by
--max-minutes.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from finecap.runtime.leftovers import processes_using
from tests.fetch.server import FAILURES, HOSTILE, HostileServer

REPO = Path(__file__).resolve().parents[2]
LOCAL_YAML = REPO / "pipelines" / "local.yaml"


class _QuietFiles(SimpleHTTPRequestHandler):
    """Serves the scenes and counts what it served (the soak kills the driver mid-fetch)."""

    served = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        super().do_GET()
        with _QuietFiles.lock:
            _QuietFiles.served += 1


def _file_server(folder: Path) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(folder)))
    server.daemon_threads = True
    server.request_queue_size = 256
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _url_list(n: int, scenes: list[Path], files: ThreadingHTTPServer, hostile: HostileServer,
              failing_share: float) -> list[str]:
    kinds = [*FAILURES, *HOSTILE]
    rng = random.Random(13)
    failing = set(rng.sample(range(n), round(n * failing_share)))
    port = files.server_address[1]
    urls = []
    for i in range(n):
        if i in failing:
            urls.append(hostile.url(f"{kinds[i % len(kinds)]}/{i}"))
        else:
            urls.append(f"http://127.0.0.1:{port}/{scenes[i % len(scenes)].relative_to(scenes[0].parents[1])}")
    return urls


class Chaos:
    """SIGKILLs random Ray workers of a driver, at most `budget` in all, one every `every_s`.

    Only workers alive for `min_age_s` are victims: workers at work, as the OOM killer finds them.
    A model stage's worker killed again and again while loading its engine is the case of an
    engine that cannot load, which ends the run by design (`run.load_retries`).
    """

    def __init__(self, budget: int, every_s: float, min_age_s: float = 90.0, seed: int = 5):
        self.budget = budget
        self.every_s = every_s
        self.min_age_s = min_age_s
        self.rng = random.Random(seed)
        self.killed: list[str] = []
        self._stop = threading.Event()

    def run_against(self, driver: subprocess.Popen) -> threading.Thread:
        self._stop.clear()
        thread = threading.Thread(target=self._loop, args=(driver.pid,), daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, driver_pid: int) -> None:
        while not self._stop.wait(self.every_s) and len(self.killed) < self.budget:
            workers = []
            try:
                for proc in psutil.Process(driver_pid).children(recursive=True):
                    try:
                        name = proc.cmdline()[0] if proc.cmdline() else ""
                        # Stage workers only (tasks and actors of the graph): Ray Data's own
                        # coordinator actors are not restarted by design.
                        old_enough = time.time() - proc.create_time() >= self.min_age_s
                        if name.startswith("ray::") and "Map" in name and old_enough:
                            workers.append(proc)
                    except psutil.Error:
                        continue
            except psutil.Error:
                return
            if workers:
                victim = self.rng.choice(workers)
                try:
                    name = victim.cmdline()[0]
                    victim.kill()
                    self.killed.append(name)
                except psutil.Error:
                    continue


def _manifests(out: Path) -> int:
    return len(list((out / "_manifest").glob("*.json"))) if (out / "_manifest").is_dir() else 0


def _wait(predicate, deadline: float, proc: subprocess.Popen) -> bool:
    while time.monotonic() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(1)
    return predicate()


CHECKS: list[bool] = []


def _check(ok: bool, what: str, failures: list[str]) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
    CHECKS.append(ok)
    if not ok:
        failures.append(what)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=12, help="Ray workers SIGKILLed over the run")
    parser.add_argument("--kill-every", type=float, default=20.0, help="seconds between worker kills")
    parser.add_argument("--failing-share", type=float, default=0.1)
    parser.add_argument("--shard-size", type=int, default=None,
                        help="rows per input shard (default: a twelfth of the URLs, 5 to 100)")
    parser.add_argument("--max-minutes", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    args.shard_size = args.shard_size or min(100, max(5, args.urls // 12))
    deadline = time.monotonic() + args.max_minutes * 60
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="fcs-", dir="/tmp"))  # short: Ray's socket paths are bounded
    from finecap.samples.source import write_sample_source

    n_scenes = min(args.urls, 400)
    source = write_sample_source(root / "scenes", n_scenes=n_scenes, seed=11, include_photos=False,
                                 base_size=(320, 240))
    scenes = sorted(source.glob("images/*.png"))
    files = _file_server(source)
    failures: list[str] = []
    with HostileServer() as hostile:
        urls = _url_list(args.urls, scenes, files, hostile, args.failing_share)
        pq.write_table(pa.table({"url": urls, "caption": [f"soak {i}" for i in range(len(urls))]}),
                       root / "urls.parquet")
        out, work = root / "out", root / "w"
        work.mkdir()
        cmd = [sys.executable, "-m", "finecap.cli", "build", "--config", str(LOCAL_YAML),
               "--input", str(root / "urls.parquet"), "--output", str(out)]
        # No source.kind: `auto` must find the URL list (and dedup, after the build, the same hash).
        for item in (f"source.shard_size={args.shard_size}", f"run.work_dir={work}",
                     "fetch.allow_private_addresses=true", "fetch.max_seconds=3", "fetch.timeout_s=2",
                     "filter.min_short_side=200"):
            cmd += ["--set", item]
        env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
        env.pop("RAY_ADDRESS", None)
        chaos = Chaos(args.kills, args.kill_every)
        log = (root / "build-1.log").open("w")
        first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        chaos.run_against(first)
        shards = -(-args.urls // args.shard_size)
        # The driver dies once, mid-run: once most good URLs were fetched (small soaks commit all
        # their shards in one burst at the end) or rows reached the writer, whichever comes first.
        good = sum(1 for u in urls if f":{files.server_address[1]}/" in u)
        reached = _wait(lambda: _QuietFiles.served >= 0.6 * good or _manifests(out)
                        or list(out.glob("_staging/*/*/*")), deadline, first)
        alive = first.poll() is None
        if alive:
            os.kill(first.pid, signal.SIGKILL)
        first.wait(60)
        chaos.stop()
        committed = _manifests(out)
        _check(reached and alive and committed < shards,
               f"the first driver was killed mid-run ({committed}/{shards} shards committed)", failures)
        log = (root / "build-2.log").open("w")
        second = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        chaos.run_against(second)
        try:
            second.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait(60)
        chaos.stop()
        rerun_log = (root / "build-2.log").read_text()
        tail = rerun_log[-3000:]
        _check(second.returncode == 0, f"the rerun exited 0 (got {second.returncode})", failures)
        done = re.search(r"\((\d+) already done\)", rerun_log)
        _check(bool(done) and int(done.group(1)) == committed,
               f"the rerun skipped the {committed} shards the killed driver committed "
               f"({done.group(0) if done else 'no summary'})", failures)
        _check(not list(work.glob("finecap-ray-*")), "the killed driver's Ray session was reaped", failures)
        if second.returncode != 0:
            print(tail, file=sys.stderr)
        _verify(out, work, args.urls, failures)
        if not failures:
            _killed_rebuild(cmd, env, root, out, work, args.urls, deadline, failures)
    files.shutdown()
    minutes = (time.monotonic() - started) / 60
    kinds = collections.Counter(name.split("(")[0] for name in chaos.killed)
    print(f"soak: {args.urls} URLs, {len(chaos.killed)} workers killed ({dict(kinds)}), 1 driver killed, "
          f"{minutes:.1f} min: {'PASSED' if not failures else 'FAILED: ' + failures[0]}")
    print(f"soak: {sum(CHECKS)} passed, {len(CHECKS) - sum(CHECKS)} failed")
    if not args.keep and not failures:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"work folder kept: {root}")
    return 1 if failures else 0


REBUILD = ["--set", "regions.captioner.max_tokens=9"]
NEW_VERSION = "000002"


def _committed(out: Path, columns: list[str], rejects: bool = False) -> pa.Table:
    from finecap.dataset import committed_shards, read_data, read_rejects

    read = read_rejects if rejects else read_data
    tables = [read(s, columns) for s in committed_shards(str(out))]
    return pa.concat_tables(tables) if tables else pa.table({c: [] for c in columns})


def _rebuilt(out: Path) -> list[dict]:
    from finecap.dataset.layout import committed_manifests

    return [m for m in committed_manifests(str(out)).values() if m.get("version") == NEW_VERSION]


def _killed_rebuild(cmd: list[str], env: dict, root: Path, out: Path, work: Path, n: int, deadline: float,
                    failures: list[str]) -> None:
    """A changed region setting: the rebuild is killed mid-way and its rerun finishes it."""
    captions = _committed(out, ["key", "captions"]).sort_by("key")
    shards = _manifests(out)
    cmd = cmd + REBUILD
    log = (root / "rebuild-1.log").open("w")
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    started = _wait(lambda: _rebuilt(out) or list(out.glob("_staging/*/*/*")), deadline, first)
    alive = first.poll() is None
    if alive:
        os.kill(first.pid, signal.SIGKILL)
    first.wait(60)
    done = len(_rebuilt(out))
    _check(started and alive and done < shards, f"the rebuild was killed mid-run ({done}/{shards} shards rebuilt)",
           failures)
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=max(1.0, deadline - time.monotonic()))
    (root / "rebuild-2.log").write_text(rerun.stdout + rerun.stderr)
    _check(rerun.returncode == 0, f"the rebuild's rerun exited 0 (got {rerun.returncode})", failures)
    _check(f"({done} already done)" in rerun.stdout and "recompute regions" in rerun.stdout,
           f"the rerun skipped the {done} rebuilt shards and recomputed regions", failures)
    rebuilt = _rebuilt(out)
    busy = sorted({stage for m in rebuilt for stage in m["stage_seconds"]})
    _check(len(rebuilt) == shards, f"every shard is in the new version ({len(rebuilt)}/{shards})", failures)
    # Regions, and the quality stage reading them (with the phrases it reads, not kept in the data).
    _check(set(busy) <= {"read", "regions", "phrases", "quality"},
           f"the rebuild ran the regions and quality stages only (busy: {busy})", failures)
    _check(_committed(out, ["key", "captions"]).sort_by("key").equals(captions),
           "every global caption is byte-identical after the rebuild", failures)
    _verify(out, work, n, failures)


def _verify(out: Path, work: Path, n: int, failures: list[str]) -> None:
    check = subprocess.run([sys.executable, "-m", "finecap.cli", "validate", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    _check(check.returncode == 0 and check.stdout.startswith("OK:"), f"validate: {check.stdout.strip()[:200]}",
           failures)
    # Committed files only: a rebuild leaves the old version's files until its manifest is replaced.
    keys = _committed(out, ["key"]).column("key").to_pylist() + _committed(out, ["key"], True).column("key").to_pylist()
    _check(len(keys) == len(set(keys)) == n, f"every input exactly once ({len(set(keys))} keys, {len(keys)} rows, "
           f"{n} inputs)", failures)
    reasons = collections.Counter(_committed(out, ["reason"], True).column("reason").to_pylist())
    print(f"  rejects by reason: {dict(reasons.most_common())}")
    deadline = time.monotonic() + 60  # Ray's processes take a moment to exit after the driver
    while (left := processes_using(work)) and time.monotonic() < deadline:
        time.sleep(1)
    _check(not left, f"no Ray process left ({len(left)} found)", failures)
    locks = [p.name for p in out.glob("_lock*")]
    _check(not locks, f"no lock left ({locks})", failures)


if __name__ == "__main__":
    sys.exit(main())
