"""benchmarks/run.py: missing benchmarks are skipped, a failing one fails the run, quick never records."""

from __future__ import annotations

import sys

from benchmarks import run


def test_runner_skips_missing_fails_on_failure_and_reports_unlisted(tmp_path, monkeypatch, capsys):
    (tmp_path / "good.py").write_text("import os, sys\nif __name__ == '__main__':\n"
                                      "    sys.exit(0 if os.environ.get('FINECAP_BENCH_NO_RECORD') else 3)\n")
    (tmp_path / "bad.py").write_text("if __name__ == '__main__':\n    raise SystemExit(1)\n")
    (tmp_path / "stray.py").write_text("if __name__ == '__main__':\n    pass\n")
    monkeypatch.setattr(run, "HERE", tmp_path)
    monkeypatch.setattr(run, "REPO", tmp_path.parent)
    monkeypatch.setattr(run, "BENCHMARKS", {n: {"quick": [], "full": []} for n in ("good", "bad", "later")})
    monkeypatch.setattr(sys, "argv", ["run.py", "--only", "good", "later"])
    assert run.main() == 0
    out = capsys.readouterr().out
    assert "later.py does not exist yet" in out and "stray.py is not in" in out
    monkeypatch.setattr(sys, "argv", ["run.py"])
    assert run.main() == 1
    assert "FAILED (exit 1)" in capsys.readouterr().out
