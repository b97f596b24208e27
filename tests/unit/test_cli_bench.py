"""`streamproc bench` outside a clone says where to run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.cli import parser as cli


def test_bench_outside_a_clone_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench"]) == cli.EXIT_CONFIG
    assert "runs from a clone of the repository" in capsys.readouterr().err
