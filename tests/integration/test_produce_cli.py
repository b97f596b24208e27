"""`streamproc produce` against the real broker: a file with a bad row sends nothing and says
which line and why; with --skip-invalid the other rows are sent, keyed as the shop's producers
key them, and read back as the values the file gave; an unreachable Kafka is exit 3."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import end_offsets
from streamproc.cli import parser as cli
from streamproc.scenario.shop import producer_key
from tests.conftest import REPO
from tests.integration.conftest import Stack, free_port, own_topic

_CSV = """\
event_id,source,customer_id,email,amount,currency,items,occurred_at,tax_rate,app_version
{run}-1,web,C1,,119.0,EUR,2,1774746000000,,
{run}-2,app,,guest@example.org,12.5,CHF,1,1774746000,0.081,5
{run}-3,pos,C3,,x,EUR,1,2026-03-29T02:30:00,,
{run}-4,pos,C4,,30,EUR,3,2026-03-29T02:30:00,,
"""


@pytest.fixture
def topic(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A topic of this test alone, declared to carry raw orders, and the CLI pointed at it."""
    folder = tmp_path / "topics"
    declaration = "value_schema: shop.OrderSubmitted\npartitions: 2\nretention_ms: 3600000\n"
    with own_topic(stack, folder, "it.produce", declaration) as name:
        monkeypatch.setenv("STREAMPROC_KAFKA_BOOTSTRAP", stack.bootstrap)
        monkeypatch.setenv("STREAMPROC_TOPICS_DIR", str(folder))
        monkeypatch.setenv("STREAMPROC_SCHEMAS_DIR", str(REPO / "schemas"))
        yield name


def _records(
    stack: Stack, topic: str, serde: AvroSerde
) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every record of `topic` (read_committed, to its end): key and decoded value."""
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": f"it-{topic}"})
    ends = end_offsets(stack.kafka, topic)
    consumer.assign([TopicPartition(topic, end.partition, 0) for end in ends])
    records: list[tuple[bytes | None, dict[str, Any]]] = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < sum(end.offset for end in ends) and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=5):
                assert message.error() is None, message.error()
                records.append((message.key(), serde.decode(message.value())))
    finally:
        consumer.close()
    return records


def test_a_bad_row_stops_the_file_and_skip_invalid_sends_the_rest(
    stack: Stack,
    topic: str,
    serde: AvroSerde,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = uuid.uuid4().hex[:8]
    path = tmp_path / "orders.csv"
    path.write_text(_CSV.format(run=run))

    assert cli.main(["produce", "--topic", topic, str(path)]) == cli.EXIT_FAILURE
    out, err = capsys.readouterr()
    assert f'{path}:4: amount: expected double, got "x"' in err
    assert "1 bad rows of 4: nothing sent" in err
    assert sum(end.offset for end in end_offsets(stack.kafka, topic)) == 0

    assert cli.main(["produce", "--topic", topic, str(path), "--skip-invalid"]) == 0
    out, err = capsys.readouterr()
    assert f"sent 3 to {topic}; skipped 1 bad rows" in out
    assert f"{path}:4: amount" in err  # still reported

    sent = {value["event_id"]: (key, value) for key, value in _records(stack, topic, serde)}
    assert sorted(sent) == [f"{run}-1", f"{run}-2", f"{run}-4"]
    key, guest = sent[f"{run}-2"]
    assert key == producer_key(guest)  # a guest: by a digest of the e-mail
    assert (guest["customer_id"], guest["email"], guest["amount"]) == (
        None,
        "guest@example.org",
        12.5,
    )
    assert (guest["occurred_at"], guest["tax_rate"], guest["app_version"]) == (1774746000, 0.081, 5)
    key, till = sent[f"{run}-4"]
    assert key == b"C4"
    assert (till["occurred_at"], till["amount"], till["item_count"]) == (
        "2026-03-29T02:30:00",
        30.0,
        3,
    )  # written as v1 (the CSV's header has items), read as v2
    assert till["tax_rate"] is None and till["payment_method"] is None


def test_json_lines_keyed_by_a_named_field(
    stack: Stack,
    topic: str,
    serde: AvroSerde,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_text(
        '{"event_id": "j1", "source": "web", "amount": 5, "currency": "EUR", "items": 1, '
        '"occurred_at": 1774746000000}\n'
    )
    assert cli.main(["produce", "--topic", topic, str(path), "--key", "event_id"]) == 0
    assert f"sent 1 to {topic}" in capsys.readouterr().out
    ((key, value),) = _records(stack, topic, serde)
    assert (key, value["amount"], value["country"]) == (b"j1", 5.0, None)


def test_an_unreachable_kafka_is_an_infrastructure_error(
    topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(_CSV.format(run="x").replace("x,EUR", "1,EUR"))
    monkeypatch.setenv("STREAMPROC_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("STREAMPROC_KAFKA_TIMEOUT_S", "2")
    assert cli.main(["produce", "--topic", topic, str(path)]) == cli.EXIT_INFRA
    assert "infrastructure error" in capsys.readouterr().err


def test_a_declared_topic_missing_on_the_cluster_is_a_configuration_error(
    topic: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = f"{topic}.never.created"
    (tmp_path / "topics" / f"{absent}.yaml").write_text(
        f"name: {absent}\nvalue_schema: shop.OrderSubmitted\npartitions: 1\nretention_ms: 1000\n"
    )
    path = tmp_path / "orders.csv"
    path.write_text(_CSV.format(run="x").replace("x,EUR", "1,EUR"))
    assert cli.main(["produce", "--topic", absent, str(path)]) == cli.EXIT_CONFIG
    assert f"no topic {absent} on" in capsys.readouterr().err
