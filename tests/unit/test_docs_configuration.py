"""docs/configuration.md is the generator's output for the Settings as they are: it cannot
drift from the code."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field

from streamproc.config import settings
from tests.conftest import REPO

REGENERATE = "make docs (or: python -m streamproc.config.settings > docs/configuration.md)"


def test_the_committed_reference_is_the_generators_output() -> None:
    committed = (REPO / "docs/configuration.md").read_text(encoding="utf-8")
    assert committed == settings.configuration_reference(), (
        f"docs/configuration.md is out of date with streamproc/config/settings.py; run {REGENERATE}"
    )


def test_every_setting_has_a_row_with_its_variable_default_and_rule() -> None:
    rows = {
        line.split(" | ")[0].strip("| `"): line
        for line in settings.configuration_reference().splitlines()
        if line.startswith("| `STREAMPROC_")
    }
    assert set(rows) == {f"STREAMPROC_{name.upper()}" for name in settings.Settings.model_fields}
    assert "| `500` | ≥ 1, ≤ 100000 |" in rows["STREAMPROC_BATCH_SIZE"]
    assert "| unset |" in rows["STREAMPROC_SCHEMA_REGISTRY_URL"]
    assert "`debug`, `info`, `warning`, `error`" in rows["STREAMPROC_LOG_LEVEL"]
    assert settings.DEV_PII_KEY not in rows["STREAMPROC_PII_KEY"]


def test_a_setting_without_a_description_stops_the_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fields: dict[str, Any] = dict(settings.Settings.model_fields)
    fields["mystery"] = Field(1)
    monkeypatch.setattr(settings.Settings, "model_fields", fields)
    with pytest.raises(ValueError, match="Settings.mystery has no description"):
        settings.configuration_reference()
