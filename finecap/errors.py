"""The exit-code convention of every `finecap` command, implemented once.

    0  success
    1  the command ran and its check failed (`validate` found problems)
    2  the command could not do what was asked: a config error, bad arguments, a refused
       output, missing input, a run that failed; one line on stderr says why

A library error that means "2" subclasses `UserError` and carries a one-line message; the
command's handler lets it propagate and `run_command` prints it and returns 2. Handlers return
0 or 1 themselves. Argument errors are argparse's own exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

OK = 0
CHECK_FAILED = 1
ERROR = 2


class UserError(Exception):
    """The command could not do what was asked, for a reason the user can act on (one line)."""

    label = "error"  # what stderr's line starts with


def run_command(handler: Callable[..., int], *args) -> int:
    """Call a command's handler; a UserError becomes `LABEL: MESSAGE` on stderr and exit 2."""
    try:
        return handler(*args)
    except UserError as exc:
        print(f"{exc.label}: {exc}", file=sys.stderr)
        return ERROR
