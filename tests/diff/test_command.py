"""`finecap diff A B` through its own parser registration (cli.py registers it the same way)."""

from __future__ import annotations

import argparse
import json

import pytest

from finecap.diff import add_parser
from tests.diff.test_compare import write_a, write_b


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="finecap")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def outputs(tmp_path):
    write_a(tmp_path / "a")
    write_b(tmp_path / "b")
    return str(tmp_path / "a"), str(tmp_path / "b")


def test_json_is_one_object_on_one_line(outputs, capsys):
    args = parse(["diff", *outputs, "--json", "--examples", "0"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    diff = json.loads(lines[0])
    assert diff["rows"]["keys"]["only_b"] == {"count": 1, "examples": []}
    assert diff["provenance"]["stages_differ"] == ["caption"]


def test_human_report_names_what_changed(outputs, capsys):
    args = parse(["diff", *outputs])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "kept -> rejected filter/blurry: 1 (e.g. k2)" in out
    assert "rows in both: 3 identical, changed 1 (e.g. k1), added 0, removed 0" in out
    assert "caption      DIFFERS: A fp-c1; B fp-c2" in out
    assert not out.lstrip().startswith("{")


def test_missing_output_exits_2_in_one_line(outputs, tmp_path, capsys):
    from finecap.errors import run_command

    args = parse(["diff", outputs[0], str(tmp_path / "nothing")])
    assert run_command(args.func, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no committed shards under")


def test_examples_must_be_a_whole_number(capsys):
    with pytest.raises(SystemExit):
        parse(["diff", "a", "b", "--examples", "-1"])
    assert "--examples: expected a whole number >= 0" in capsys.readouterr().err
