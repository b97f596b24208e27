"""Kappa replay on the real stack: the live deployment serves 10,000 orders; a changed feature
definition (a new window) is replayed into v2 beside it; v2 is promoted while reads go on and
orders keep coming; the serving predictions topic gets every order once; rollback returns to
v1."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.producer import produce_records
from streamproc.adapters.redis.client import redis_client
from streamproc.adapters.redis.serving_reader import ServingFeatureReader
from streamproc.config.pipeline import load_pipeline
from streamproc.tools.replay import CatchUp
from tests.integration.conftest import Stack, start_worker, stop_worker
from tests.integration.replay_support import (
    OwnDeployment,
    cli,
    own_deployment,
    read_all,
    replay_records,
    start_replay,
)

EVENTS = 10_000
LATER = 1_500  # orders sent while the switch happens
NEW_FEATURE = "amount_count_30m"


@pytest.fixture
def deployment(stack: Stack, tmp_path: Path) -> Iterator[OwnDeployment]:
    yield from own_deployment(stack, tmp_path)


@dataclass
class Reads:
    """Reads of the serving features in a loop, as a service would do them."""

    url: str
    base: str
    pipeline: Path
    entities: list[str]
    seen: list[tuple[float, str, bool]] = field(default_factory=list)  # at, version, new one
    errors: list[BaseException] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        client = redis_client(self.url)
        reader = ServingFeatureReader(client, self.base, load_pipeline(self.pipeline).features)
        try:
            while not self.stopping.is_set():
                try:
                    version, vectors = await reader.get_many(self.entities, int(time.time() * 1000))
                    new = all(NEW_FEATURE in v for v in vectors.values())
                    assert all(vectors.values()), "an entity without features"
                    self.seen.append((time.monotonic(), version, new))
                except Exception as exc:  # noqa: BLE001 - every failed read is the finding
                    self.errors.append(exc)
                await asyncio.sleep(0.01)
        finally:
            await client.aclose()

    def versions_since(self, at: float) -> set[tuple[str, bool]]:
        return {(version, new) for when, version, new in self.seen if when >= at}


def _event_ids(stack: Stack, serde: AvroSerde, topic: str, schema: str) -> Counter[str]:
    return Counter(serde.decode(m.value(), schema)["event_id"] for m in read_all(stack, topic))


def _wait_processed(stack: Stack, group: str, raw: str, clean: str, timeout_s: float = 180) -> None:
    """Until `group` has read the raw topic to its present end, and its clean topic to the
    end that gave it (what `replay` calls caught up)."""
    deadline = time.monotonic() + timeout_s
    catch_up = CatchUp(stack.kafka, group, (raw, clean))
    while not (at := catch_up.position()).caught_up:
        assert time.monotonic() < deadline, f"{group}: {at.left} records left"
        time.sleep(0.5)


def _assert_each_order_served_once(
    stack: Stack, serde: AvroSerde, deployment: OwnDeployment, later_ids: set[str]
) -> None:
    """Each order of `later_ids` predicted once on the serving topic: by v1 up to the cutover,
    by v2 after it; each version's other predictions went to its own topic."""
    clean = deployment.topic("shop.order.clean.v1")
    predictions = deployment.topic("shop.order_prediction.v1")
    clean_later = set(_event_ids(stack, serde, clean, "shop.OrderClean")) & later_ids
    served = _event_ids(stack, serde, predictions, "shop.OrderPrediction")
    served_later = {e: n for e, n in served.items() if e in later_ids}
    assert set(served_later) == clean_later
    assert set(served_later.values()) == {1}
    v1_shadow = set(_event_ids(stack, serde, f"{predictions}.v1", "shop.OrderPrediction"))
    v2_shadow = set(_event_ids(stack, serde, f"{predictions}.v2", "shop.OrderPrediction"))
    assert v1_shadow & clean_later and v2_shadow & clean_later  # both served some
    assert (v1_shadow | v2_shadow) & clean_later == clean_later
    assert not v1_shadow & v2_shadow & clean_later


def _roll_back_and_forth(env: dict[str, str], reads: Reads) -> None:
    """v1 is the previous version: `versions` says so, a rollback serves it again (reads
    follow), a second returns to v2; no read failed; an unknown version is refused."""
    listed = cli(env, "versions", "--json")
    roles = {
        json.loads(line)["version"]: json.loads(line)["role"] for line in listed.stdout.splitlines()
    }
    assert roles["v2"] == "serving" and roles["v1"].startswith("previous")

    rolled_back = cli(env, "rollback")
    assert rolled_back.returncode == 0, rolled_back.stderr
    after_rollback = time.monotonic()
    time.sleep(1)
    assert reads.versions_since(after_rollback) == {("v1", False)}
    assert not reads.errors, reads.errors[:3]
    assert len(reads.seen) > 100
    assert cli(env, "rollback").returncode == 0  # v2 is the previous one now
    assert cli(env, "promote", "v9").returncode == 1  # no such version


def test_replay_promote_and_rollback_with_reads_and_orders_going_on(
    stack: Stack, serde: AvroSerde, deployment: OwnDeployment, tmp_path: Path
) -> None:
    env = deployment.env
    raw, clean = deployment.topic("shop.order.v1"), deployment.topic("shop.order.clean.v1")
    overrides = {k: env[k] for k in ("STREAMPROC_PIPELINE", "STREAMPROC_TOPICS_DIR")}
    live = start_worker(stack, deployment.group, tmp_path / "v1", **overrides)
    replay = None
    reads = None
    try:
        first, _ = replay_records(deployment, serde, 11, EVENTS)
        produce_records(stack.kafka, first)
        _wait_processed(stack, deployment.group, raw, clean)

        # A new window, so a new feature: deployed by replaying the log into v2.
        changed = deployment.pipeline_with(
            "v2.yaml",
            ("windows: {1h: 10m,", "windows: {30m: 5m, 1h: 10m,"),
            ("  version: 1", "  version: 2"),
        )
        replay = start_replay(env, tmp_path, "--namespace", "v2", "--pipeline", str(changed))
        caught_up = replay.wait_for("caught up")
        assert "records/s" in caught_up
        assert any("ETA" in line or "following" in line for line in replay.lines())

        entities = sorted(
            {
                e
                for m in read_all(stack, clean)
                if (e := serde.decode(m.value(), "shop.OrderClean")["entity_key"])
            }
        )[:40]
        reads = Reads(stack.redis_url, deployment.group, deployment.pipeline, entities)
        reading = threading.Thread(target=reads.run, daemon=True)
        reading.start()

        later, later_ids = replay_records(deployment, serde, 12, LATER)
        sending = threading.Thread(target=produce_records, args=(stack.kafka, later, 150))
        sending.start()
        time.sleep(3)
        assert live.counter("streamproc_deployment_serving", version="v1") == 1
        before_promotion = time.monotonic()
        promoted = cli(env, "promote", "v2", "--grace", "1h")
        assert promoted.returncode == 0, promoted.stderr
        after_promotion = time.monotonic()
        sending.join()
        _wait_processed(stack, deployment.group, raw, clean)
        _wait_processed(stack, f"{deployment.group}-v2", raw, f"{clean}.v2")

        # Reads: v1 before, v2 with its new feature from the promotion on; none failed.
        assert {(v, n) for when, v, n in reads.seen if when < before_promotion} == {("v1", False)}
        assert reads.versions_since(after_promotion) == {("v2", True)}
        shown = cli(env, "features", "get", "--json", entities[0])
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["version"] == "v2"
        assert NEW_FEATURE in json.loads(shown.stdout)["features"]

        _assert_each_order_served_once(stack, serde, deployment, later_ids)

        assert live.counter("streamproc_deployment_serving", version="v1") == 0  # a shadow now
        _roll_back_and_forth(env, reads)
    finally:
        if reads is not None:
            reads.stopping.set()
        if replay is not None:
            assert replay.stop() == 0
        stop_worker(live)
