"""Pipeline declarations: the reference loads; a wrong one names the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.config.pipeline import load_pipeline
from streamproc.core.normalize import Normalizer
from streamproc.errors import ConfigError
from tests.builders import read_order
from tests.conftest import REPO

REFERENCE = REPO / "pipelines/shop_orders.yaml"


def _declaration(tmp_path: Path, old: str, new: str) -> Path:
    """The reference declaration with one text replaced."""
    text = REFERENCE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "pipeline.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_reference_declaration_loads() -> None:
    spec = load_pipeline(REFERENCE)
    assert spec.sources["pos"].time_format == "local"
    assert spec.dedupe.window_ms == 600_000
    assert [part.field for part in spec.entity_key] == ["customer_id", "email"]


@pytest.mark.parametrize(
    ("old", "new", "field", "expected"),
    [
        ("time_format: epoch_s", "time_format: epoch_min", "sources.app.time_format", "epoch_ms"),
        ("window: 10m", "window: 10 minutes", "dedupe.window", "like 500ms"),
        ("action: convert", "action: fix", "unit_switch.action", "quarantine"),
        ("USD: 0.86", "USD: -1", "money.rates_to_eur", "positive rate"),
        ("duration_unit: ms", "duration_unit: ms\n    colour: blue", "sources.app.colour", "Extra"),
    ],
)
def test_a_wrong_declaration_names_the_file_the_line_the_field_and_what_is_expected(
    tmp_path: Path, old: str, new: str, field: str, expected: str
) -> None:
    path = _declaration(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    line = _line_of(path, new.split("\n")[-1].strip())
    assert f"{path}:" in message and field in message and expected in message
    assert f"{path}:{line}:" in message


def test_an_entity_key_from_an_unknown_field_is_refused(tmp_path: Path) -> None:
    path = _declaration(tmp_path, "- {field: customer_id}", "- {field: customer_number}")
    with pytest.raises(ConfigError, match="entity_key: 'customer_number' is not a raw field"):
        load_pipeline(path)


def test_broken_yaml_and_a_missing_file_name_the_file(tmp_path: Path) -> None:
    path = _declaration(tmp_path, "home_country: DE", "home_country: [DE")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_pipeline(path)
    with pytest.raises(ConfigError, match="cannot read the pipeline declaration"):
        load_pipeline(tmp_path / "nowhere.yaml")


def test_the_declared_entity_key_rule_is_the_one_applied(tmp_path: Path) -> None:
    path = _declaration(
        tmp_path, "  - {field: customer_id}\n", ""
    )  # e-mail only: registered customers too are keyed by their hashed address
    normalizer = Normalizer(load_pipeline(path), b"key")
    clean = normalizer.normalize(read_order(customer_id="C1", email="ada@example.org"))
    entity = clean["entity_key"]
    assert entity is not None and entity.startswith("guest:")
    assert clean["customer_id"] == "C1"


def test_plausible_ranges_are_declared_and_checked(tmp_path: Path) -> None:
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    assert spec.plausible.tax_rate == (0.0, 0.5)
    path = _declaration(tmp_path, "tax_rate: [0, 0.5]", "tax_rate: [0.5, 0]")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    assert f"{path}:" in str(caught.value) and "plausible" in str(caught.value)
