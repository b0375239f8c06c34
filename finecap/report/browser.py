"""Headless Chromium: screenshots and rendered DOM of report pages (tests, docs/gallery.png).

Uses the system Chromium (Debian's `chromium`, installed by `make browser`), never a browser a
test tool downloads. Flags: headless without a sandbox (CI runs as root), no GPU, and no
background networking, component updates, sync or QUIC, since the machine has no network and
Chromium would otherwise keep trying; a fresh profile per call so runs never share state.

    python -m finecap.report.browser screenshot PAGE.html OUT.png [--size 1280x1400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=3000",  # let images load and scripts run before the capture
)


class BrowserMissing(RuntimeError):
    """No Chromium on this machine."""


def find_chromium() -> str:
    explicit = os.environ.get("FINECAP_CHROMIUM")
    found = explicit or next((p for p in map(shutil.which, CANDIDATES) if p), None)
    if not found:
        raise BrowserMissing("no Chromium found: run `make browser` (installs Debian's chromium) "
                             "or set FINECAP_CHROMIUM to its path")
    return found


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="finecap-chromium-") as profile:
        command = [find_chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.run(command, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc


def page_url(page: str | Path) -> str:
    return page if "://" in str(page) else Path(page).resolve().as_uri()


def screenshot(page: str | Path, out: str | Path, size: tuple[int, int] = (1280, 1400),
               timeout: float = 120) -> Path:
    """Render `page` in a `size` viewport and save it as PNG at `out`."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    _run([f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", page_url(page)], timeout)
    if not out.exists():
        raise RuntimeError(f"chromium did not write {out}")
    return out


def dump_dom(page: str | Path, timeout: float = 120) -> str:
    """The page's DOM after scripts ran, serialised as HTML."""
    return _run(["--dump-dom", page_url(page)], timeout).stdout.decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finecap.report.browser", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    shot = sub.add_parser("screenshot", help="save a PNG of a page")
    shot.add_argument("page")
    shot.add_argument("out")
    shot.add_argument("--size", default="1280x1400", help="viewport WIDTHxHEIGHT (default 1280x1400)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    try:
        print(screenshot(args.page, args.out, (width, height)))
    except BrowserMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
