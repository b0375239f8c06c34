"""What a finecap process does around its command: the `finecap` console script and each
torchrun trainer of `finecap train --ray-address` (which must not import the CLI) share it."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable


def start(verbose: bool) -> None:
    """SIGTERM unwinds like Ctrl-C, so `finally` blocks shut Ray down and remove its temp dir;
    logging at INFO with -v, else WARNING."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def exit_with(main: Callable[[], int]) -> None:
    """Run `main` and end the process with its code, by `os._exit` once output is flushed: under
    load, a native library's threads occasionally abort the interpreter's final teardown (seen
    as SIGABRT, "terminate called without an active exception", about 1 exit in 30 of `finecap
    validate` on a busy 2-core machine) after the command itself succeeded. Ray is already shut
    down and every file closed by then."""
    try:
        code = main()
    except SystemExit as exc:  # argparse: 2 for bad arguments, 0 for --help
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
