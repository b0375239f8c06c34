"""`finecap`'s exit codes, one per kind of outcome, whatever the command (finecap/cli.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finecap.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_a_check_that_fails_exits_1(tmp_path, capsys):
    assert main(["validate", str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith(f"INVALID: {tmp_path}")


def test_a_config_error_exits_2_naming_the_key(tmp_path, capsys):
    (tmp_path / "pipeline.yaml").write_text("source:\n  shard_sise: 4\n")
    assert main(["build", "--config", str(tmp_path / "pipeline.yaml"), "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == ("config error: unknown key 'source.shard_sise' "
                                       "(did you mean 'source.shard_size'?)\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["report", "{tmp}"], "error: no committed shards under {tmp}"),  # missing input
    (["balance", "{tmp}", "--cap", "0"], "error: --cap must be >= 1, got 0"),  # refused by the library
    (["plan", "--images", "0"], "error: need --images >= 1"),
])
def test_a_command_that_cannot_do_what_was_asked_exits_2_in_one_line(argv, message, tmp_path, capsys):
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message.format(tmp=tmp_path)) and err.count("\n") == 1, err


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["validate"])
    assert exc.value.code == 2


def test_the_console_script_exits_with_the_same_codes(tmp_path):
    done = subprocess.run([sys.executable, "-m", "finecap.cli", "report", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: no committed shards"), done.stderr
    usage = subprocess.run([sys.executable, "-m", "finecap.cli", "plan"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "--images" in usage.stderr, usage.stderr
