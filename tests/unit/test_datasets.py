"""`streamproc dataset NAME`: every binary-classification dataset River bundles streams by
name, as River itself accounts for its datasets; the others are refused with the names that
work."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from river import datasets
from river.datasets import base

from streamproc.cli import main
from streamproc.errors import ConfigError
from streamproc.scenario.river_datasets import START_MS, known, labels_path, stream


def bundled_binary() -> list[str]:
    """River's own account: binary classification, a file inside the package, not fetched."""
    found = []
    for cls in vars(datasets).values():
        if not (inspect.isclass(cls) and issubclass(cls, base.FileDataset)):
            continue
        if issubclass(cls, base.RemoteDataset):
            continue
        dataset: Any = cls()
        if dataset.task == base.BINARY_CLF and dataset.path.exists():
            found.append(cls.__name__.lower())
    return sorted(found)


def test_river_bundles_bananas_and_phishing_and_only_offers_creditcard_as_a_download() -> None:
    assert {"bananas", "phishing"} <= set(bundled_binary())
    assert issubclass(datasets.CreditCard, base.RemoteDataset)
    assert datasets.CreditCard().task == base.BINARY_CLF


@pytest.mark.parametrize("name", bundled_binary())
def test_every_bundled_binary_dataset_streams_by_name(name: str) -> None:
    rows = stream(name)
    dataset = known(name)
    assert len(rows.events) == len(rows.labels) == dataset.dataset().n_samples
    ids = [f"{name}-{row:06d}" for row in range(len(rows.events))]
    assert [event["event_id"] for event in rows.events] == ids
    assert [label["event_id"] for label in rows.labels] == ids
    assert all(type(label[dataset.label_field]) is bool for label in rows.labels)
    assert {label[dataset.label_field] for label in rows.labels} == {False, True}
    times = [event["occurred_at"] for event in rows.events]
    assert times == sorted(set(times))
    assert [label["occurred_at"] for label in rows.labels] == times
    assert len({tuple(event) for event in rows.events}) == 1  # one record shape


def test_bananas_streams_rivers_rows_under_avro_names() -> None:
    rows = stream("bananas")
    river = list(datasets.Bananas())
    assert len(rows.events) == 5300
    # River names the features 1 and 2, which are no Avro field names
    assert rows.events[0] == {
        "event_id": "bananas-000000",
        "occurred_at": START_MS,
        "x1": river[0][0]["1"],
        "x2": river[0][0]["2"],
    }
    assert [(e["x1"], e["x2"]) for e in rows.events] == [(x["1"], x["2"]) for x, _ in river]
    assert [label["label"] for label in rows.labels] == [y for _, y in river]


def test_names_are_taken_in_any_case_and_without_separators() -> None:
    assert known("Bananas") == known("BANANAS") == known("bananas")


def test_phishing_keeps_its_hand_written_label_field() -> None:
    first = {"event_id": "phishing-000000", "is_phishing": True, "occurred_at": START_MS}
    assert stream("phishing").labels[0] == first


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("no-such-dataset", "unknown dataset 'no-such-dataset'"),
        ("creditcard", "River downloads it"),
        ("credit_card", "River downloads it"),
        ("trumpapproval", "Regression"),
        ("imagesegments", "Multi-class classification"),
        ("agrawal", "synthetic"),
    ],
)
def test_other_names_are_refused_with_the_names_that_work(name: str, why: str) -> None:
    with pytest.raises(ConfigError) as refused:
        stream(name)
    assert why in str(refused.value)
    assert str(refused.value).endswith(f": {', '.join(bundled_binary())}")


def test_the_cli_writes_bananas_events_and_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "data" / "bananas.jsonl"
    assert main(["dataset", "bananas", "--out", str(events)]) == 0
    rows = stream("bananas")
    assert [json.loads(line) for line in events.read_text().splitlines()] == rows.events
    assert [
        json.loads(line) for line in labels_path(events).read_text().splitlines()
    ] == rows.labels
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {events}",
        f"wrote {labels_path(events)}",
    ]


def test_the_cli_refuses_a_remote_dataset_and_lists_what_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dataset", "creditcard", "--out", str(tmp_path / "cc.jsonl")]) == 2
    error = capsys.readouterr().err
    assert "River downloads it" in error and ", ".join(bundled_binary()) in error
    assert not (tmp_path / "cc.jsonl").exists()
