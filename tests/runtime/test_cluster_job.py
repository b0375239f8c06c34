"""`ray job submit` of `finecap build` to a real local Ray cluster on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import LOCAL_YAML, NO_LOCAL_CAPTIONS, REPO
from tests.runtime.local_cluster import RAY, local_cluster, processes_of

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def test_build_submitted_as_a_ray_job_validates(tmp_path):
    from finecap.samples.source import write_sample_source

    source = write_sample_source(tmp_path / "src", n_scenes=6, seed=9, include_photos=False)
    out = tmp_path / "out"
    with local_cluster() as cluster:
        job = [RAY, "job", "submit", "--address", cluster["dashboard"], "--working-dir", str(REPO), "--",
               sys.executable, "-m", "finecap.cli", "build", "--config", str(LOCAL_YAML),
               "--input", str(source), "--output", str(out), "--ray-address", "auto",
               "--set", "caption.captioners.0.max_tokens=8", "--set", "caption.captioners.1.max_tokens=8"]
        for item in NO_LOCAL_CAPTIONS:
            job += ["--set", item]
        # The head's job agent comes up seconds after `ray start` (minutes on a loaded machine).
        deadline = time.monotonic() + 300
        while True:
            proc = subprocess.run(job, env=cluster["env"], capture_output=True, text=True, timeout=900)
            if "No available agent" not in proc.stderr or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "succeeded" in proc.stdout.lower()
        check = subprocess.run([sys.executable, "-m", "finecap.cli", "validate", str(out)], cwd=REPO,
                               capture_output=True, text=True, timeout=300)
        assert check.stdout.startswith("OK:") and "6 rows" in check.stdout, check.stdout
        temp_dir = cluster["temp_dir"]
    assert processes_of(temp_dir) == []
