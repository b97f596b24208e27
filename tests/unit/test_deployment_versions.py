"""Deployment versions: the names a version owns, the serving pointer's rule for the
predictions topic, and the replay's progress lines."""

from __future__ import annotations

import asyncio
import io

import pytest

from streamproc.config.deployment import Deployment, shadow_topic, versioned_topic
from streamproc.core.serving import CUTOVER_DELAY_MS, Serving
from streamproc.records import OutRecord
from streamproc.stages.serving_route import ServingRoute, VersionRetired
from streamproc.tools.replay import Position, ProgressReport


def test_v1_keeps_the_names_it_always_had() -> None:
    v1 = Deployment("v1", "streamproc", "streamproc")
    assert (v1.namespace, v1.group, v1.topic("shop.order.clean.v1")) == (
        "streamproc",
        "streamproc",
        "shop.order.clean.v1",
    )
    assert v1.renames(("shop.order.clean.v1",)) == {}


def test_another_version_has_its_own_keys_group_and_topics_role_suffixes_last() -> None:
    v2 = Deployment("v2", "streamproc", "shop-app")
    assert v2.namespace == "streamproc:v2"  # under the base: one ACL key pattern covers both
    assert v2.group == "shop-app-v2"
    assert v2.serving_key == "streamproc:serving"
    assert versioned_topic("shop.order.clean.v1", "v2") == "shop.order.clean.v1.v2"
    assert versioned_topic("shop.order.v1.dlq", "v2") == "shop.order.v1.v2.dlq"
    assert versioned_topic("shop.order.clean.v1.late", "v2") == "shop.order.clean.v1.v2.late"
    assert shadow_topic("shop.order_prediction.v1", "v1") == "shop.order_prediction.v1.v1"


def test_without_a_pointer_v1_serves_everything() -> None:
    assert Serving().serves("v1", 123) and not Serving().serves("v2", 123)


def test_the_predictions_topic_switches_at_the_cutover_in_log_time() -> None:
    promoted = Serving().promoted("v2", now_ms=1_000_000, grace_ms=60_000)
    cutover = 1_000_000 + CUTOVER_DELAY_MS
    assert promoted.cutover_ms == cutover and promoted.previous == "v1"
    # every event served by exactly one version, whatever either has read so far
    for logged in (999_000, cutover - 1, cutover, cutover + 1):
        servers = [v for v in ("v1", "v2") if promoted.serves(v, logged)]
        assert servers == (["v1"] if logged < cutover else ["v2"])
    rolled_back = promoted.promoted("v1", now_ms=2_000_000, grace_ms=60_000)
    assert (rolled_back.version, rolled_back.previous) == ("v1", "v2")


def test_the_previous_version_retires_once_its_grace_is_over_and_only_once() -> None:
    promoted = Serving().promoted("v2", now_ms=0, grace_ms=60_000)
    assert promoted.retire_due(59_999) is None
    assert promoted.retire_due(60_000) == "v1"
    marked = Serving(
        promoted.version, promoted.previous, promoted.cutover_ms, 0, promoted.retire_at_ms, "v1"
    )
    assert marked.retire_due(120_000) is None


class _Pointer:
    def __init__(self, serving: Serving) -> None:
        self.serving = serving

    async def read(self) -> Serving:
        return self.serving


def _prediction(logged_ms: int) -> OutRecord:
    return OutRecord("predictions", b"k", b"v", (), logged_ms)


def test_a_worker_routes_each_prediction_by_the_pointer_read_for_its_batch() -> None:
    pointer = _Pointer(Serving())
    v1 = ServingRoute(pointer, "v1", "predictions", "predictions.v1")
    v2 = ServingRoute(pointer, "v2", "predictions", "predictions.v2")
    batch = [_prediction(t) for t in (10, 20_000)]
    assert [r.topic for r in asyncio.run(v2.route(batch))] == ["predictions.v2"] * 2
    assert [r.topic for r in asyncio.run(v1.route(batch))] == ["predictions"] * 2
    pointer.serving = Serving().promoted("v2", now_ms=10_000, grace_ms=1)  # cutover 15,000
    assert [r.topic for r in asyncio.run(v1.route(batch))] == ["predictions", "predictions.v1"]
    assert [r.topic for r in asyncio.run(v2.route(batch))] == ["predictions.v2", "predictions"]


def test_a_worker_of_a_retired_version_stops() -> None:
    promoted = Serving().promoted("v2", now_ms=0, grace_ms=1)
    retired = Serving(
        promoted.version, promoted.previous, promoted.cutover_ms, 0, promoted.retire_at_ms, "v1"
    )
    route = ServingRoute(_Pointer(retired), "v1", "predictions", "predictions.v1")
    with pytest.raises(VersionRetired, match="v1 was retired"):
        asyncio.run(route.route([_prediction(1)]))


def test_progress_says_rate_eta_and_when_it_has_caught_up() -> None:
    out = io.StringIO()
    report = ProgressReport("v2", out=out)
    assert not report.see(0.0, Position(done=0, left=10_000))
    assert not report.see(2.0, Position(done=4_000, left=6_000))
    assert report.see(4.0, Position(done=9_950, left=50, caught_up=True))
    assert not report.see(6.0, Position(done=10_500, left=20, caught_up=True))  # following
    lines = out.getvalue().splitlines()
    assert "4,000 of 10,000 records (40.0%), 2,000 records/s, 6,000 behind, ETA 3 s" in lines[1]
    assert "caught up: 9,950 records in 4.0 s (2,488 records/s), 50 behind" in lines[2]
    assert lines[3].endswith("following")
