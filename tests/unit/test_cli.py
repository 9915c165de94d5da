"""The ``voxray`` command (cluster/cli.py): its own verbs and the dispatch to the tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_schema_check_passes_the_shipped_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "check", str(ROOT / "schemas" / "prior_auth")]) == 0
    assert "ok, schema 'prior_auth'" in capsys.readouterr().out


def test_schema_check_names_each_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\ninitial_state: nowhere\nstates: {}\n")
    assert main(["schema", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "problem" in err


def test_a_tool_verb_runs_its_module_with_the_rest_of_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["faults", "--help"]) == 0
    assert "usage: voxray faults" in capsys.readouterr().out


def test_no_verb_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "voxray run" in capsys.readouterr().out
