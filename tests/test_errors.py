"""The exit-code convention: a UserError is one line on stderr and exit 2, anything else is a bug."""

from __future__ import annotations

import pytest

from finecap.balance import BalanceError
from finecap.dedup import DedupError
from finecap.errors import ERROR, UserError, run_command
from finecap.plan import PlanError
from finecap.report import ReportError
from finecap.runtime.isolation import EngineLoadError, RunFailed
from finecap.runtime.resume import NotAFinecapOutput, ResumeRefused
from finecap.train.ray_launch import LaunchError
from finecap.typed_config import ConfigError


def _raise(exc: BaseException) -> int:
    raise exc


@pytest.mark.parametrize("cls", [BalanceError, DedupError, EngineLoadError, LaunchError, NotAFinecapOutput,
                                 PlanError, ReportError, ResumeRefused, RunFailed])
def test_every_command_error_prints_one_error_line_and_exits_2(cls, capsys):
    assert issubclass(cls, UserError)
    assert run_command(_raise, cls("the reason")) == ERROR == 2
    assert capsys.readouterr().err == "error: the reason\n"


def test_a_config_error_keeps_its_own_prefix(capsys):
    assert run_command(_raise, ConfigError("unknown key 'source.shard_sise'")) == 2
    assert capsys.readouterr().err == "config error: unknown key 'source.shard_sise'\n"
    assert issubclass(ConfigError, ValueError)  # callers that catch ValueError still do


def test_handlers_codes_pass_through_and_bugs_are_not_masked(capsys):
    assert run_command(lambda code: code, 1) == 1
    assert run_command(lambda code: code, 0) == 0
    with pytest.raises(KeyError):
        run_command(_raise, KeyError("a bug"))
    assert capsys.readouterr().err == ""
