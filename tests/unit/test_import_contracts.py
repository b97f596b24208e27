"""The import contracts cover a file the day it is added: a new module in core, config or stages
that imports Faust, Redis or Kafka breaks them, with no contract naming it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports_with(
    tmp_path: Path, module: str, source: str
) -> subprocess.CompletedProcess[str]:
    """lint-imports, with the repo's contracts, on a copy of streamproc holding one new module."""
    shutil.copytree(REPO / "streamproc", tmp_path / "streamproc")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "streamproc" / Path(*module.split("."))).with_suffix(".py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(  # noqa: S603 (our own lint-imports, fixed arguments)
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_as_it_is_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint_imports_with(tmp_path, "core.harmless", "import json\n")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("core.uses_faust", "faust"),
        ("core.uses_redis", "redis"),
        ("config.uses_kafka", "confluent_kafka"),
        ("stages.uses_redis", "redis"),
    ],
)
def test_a_new_pure_module_that_does_io_breaks_a_contract(
    tmp_path: Path, module: str, imported: str
) -> None:
    result = _lint_imports_with(tmp_path, module, f"import {imported}\n")
    assert result.returncode != 0
    assert "Core, config and stages do no I/O" in result.stdout
    assert f"streamproc.{module} -> {imported}" in result.stdout


def test_a_core_module_that_imports_an_adapter_breaks_the_layers(tmp_path: Path) -> None:
    source = "from streamproc.adapters.redis.stores import RedisFeatureStore\n"
    result = _lint_imports_with(tmp_path, "core.uses_adapter", source)
    assert result.returncode != 0
    assert "Layers: each package imports only the packages below it BROKEN" in result.stdout


def test_a_producer_sdk_module_besides_its_environment_may_not_read_the_settings(
    tmp_path: Path,
) -> None:
    source = "from streamproc.config.settings import load_settings\n"
    result = _lint_imports_with(tmp_path, "producer.uses_settings", source)
    assert result.returncode != 0
    contract = "Only the worker, the cli and the producer SDK's environment read the settings"
    assert f"{contract} BROKEN" in result.stdout
    assert "streamproc.producer.uses_settings -> streamproc.config.settings" in result.stdout
