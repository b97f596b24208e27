"""Redis calls timed and their failures counted by kind; a guard's refusal is no failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.exceptions import ConnectionError, ResponseError, TimeoutError  # noqa: A004

from streamproc.adapters.redis import calls
from streamproc.adapters.redis.calls import observe_redis_calls, timed_call


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.errors: list[tuple[str, str]] = []

    def redis_call(self, call: str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append(call)

    def redis_error(self, call: str, error: str) -> None:
        self.errors.append((call, error))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    before = calls._observer
    recorder = Recorder()
    observe_redis_calls(recorder)
    yield recorder
    observe_redis_calls(before)


def test_a_call_is_timed(recorder: Recorder) -> None:
    with timed_call("dedupe"):
        pass
    assert (recorder.calls, recorder.errors) == (["dedupe"], [])


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (TimeoutError("Timeout reading from socket"), "timeout"),
        (ConnectionError("Connection reset by peer"), "connection"),
        (ResponseError("NOPERM this user has no permissions"), "response"),
    ],
)
def test_a_failed_call_is_counted_by_kind_and_still_raises(
    recorder: Recorder, error: Exception, kind: str
) -> None:
    with pytest.raises(type(error)), timed_call("features_save"):
        raise error
    assert recorder.errors == [("features_save", kind)]
    assert recorder.calls == ["features_save"]


def test_a_guard_conflict_is_an_answer_not_a_failure(recorder: Recorder) -> None:
    with pytest.raises(ResponseError), timed_call("features_save"):
        raise ResponseError("CONFLICT offsets moved")
    assert recorder.errors == []
