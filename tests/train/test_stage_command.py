"""The trainer torchrun starts for `finecap train --ray-address`: `finecap train`'s arguments and
exit codes, without the CLI (finecap.train.ray_launch's `__main__`)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO, TINY_YAML

BAD_KEY = ["train", "stage2", "--config", str(TINY_YAML), "--set", "stage2.stepz=3"]
EXPECTED = "config error: unknown key 'stage2.stepz' (did you mean 'stage2.steps'?)\n"


def test_the_trainer_entry_exits_2_on_a_config_error_in_one_line():
    done = subprocess.run([sys.executable, "-m", "finecap.train.ray_launch", "--verbose", *BAD_KEY], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (2, EXPECTED)


def test_the_trainer_never_imports_the_cli():
    code = ("import sys\nfrom finecap.train.stage_command import trainer_main\n"
            f"code = trainer_main({BAD_KEY!r})\nprint(code, 'finecap.cli' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False"] and done.stderr == EXPECTED, done.stderr
