"""finecap as a real package: a wheel built from this checkout, installed NON-editable into a
fresh virtual environment, runs `samples synth`, `validate`, `report` and `plan` from a folder
outside the checkout, so every file those commands read must ship inside the package.

Offline: the wheel is built with this venv's setuptools (`--no-build-isolation --no-index`) from
a copy of the sources (nothing is written into the checkout), and the new venv sees this venv's
installed dependencies through a `.pth` file naming its site-packages, and nothing else: the
.pth files inside that folder (this checkout's editable finder among them) are not processed,
since it is not a site dir of the new venv. About 15 s on 2 busy cores, most of it the
command starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(cmd: list, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "finecap", src / "finecap", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--quiet", "-w", dist, src], cwd=src)
    [built] = dist.glob("finecap-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed and this venv's dependencies visible."""
    root = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    python = root / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=root).stdout.strip())
    deps = Path(sysconfig.get_paths()["purelib"])
    assert deps.name == "site-packages"  # installed packages only, never the checkout itself
    (site / "finecap-deps.pth").write_text(f"{deps}\n")
    # --ignore-installed: the editable finecap in this venv is visible too; never touch it.
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--quiet", wheel],
         cwd=root)
    return root


def _env(venv: Path) -> dict:
    """The test's environment minus anything pointing into the checkout (its model cache)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINECAP_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_wheel_ships_the_schemas_and_the_recorded_rates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for version in sorted(p.name for p in (REPO / "finecap" / "schemas").glob("*.json")):
        assert f"finecap/schemas/{version}" in names
    assert {"finecap/benchmark_results/stage_rates.json", "finecap/cli.py"} <= names
    assert not [n for n in names if n.startswith(("schemas/", "benchmarks/", "tests/"))]


def test_the_installed_package_is_the_one_imported(venv, tmp_path):
    code = ("import finecap, finecap.schema, finecap.plan; print(finecap.__file__); "
            "print(finecap.schema.SCHEMA_DIR); print(finecap.plan.RESULTS_DIR)")
    paths = [Path(p) for p in _run([venv / "bin" / "python", "-c", code], tmp_path, _env(venv)).stdout.split()]
    assert len(paths) == 3
    for path in paths:
        assert venv in path.parents and REPO not in path.parents, path


def test_the_installed_command_validates_reports_and_plans_outside_the_checkout(venv, tmp_path):
    env, finecap = _env(venv), venv / "bin" / "finecap"
    assert finecap.read_text().startswith(f"#!{venv / 'bin' / 'python'}")
    out = tmp_path / "synth"
    _run([finecap, "samples", "synth", out, "--n", "8", "--shard-size", "4", "--width", "160", "--height", "120"],
         tmp_path, env)
    data = out / "train"
    check = _run([finecap, "validate", data], tmp_path, env)
    assert check.stdout.startswith(f"OK: {data}: 2 shards, 7 rows"), check.stdout
    report = _run([finecap, "report", data, "--gallery-size", "4"], tmp_path, env)
    assert (data / "README.md").exists() and (data / "report" / "index.html").exists(), report.stdout
    plan = _run([finecap, "plan", "--images", "1000"], tmp_path, env)
    assert "finecap/benchmark_results" in plan.stdout and "bottleneck: " in plan.stdout, plan.stdout
