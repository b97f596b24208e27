"""Before Faust starts, the worker checks its topics exist and says how to create them."""

from __future__ import annotations

import pytest

from streamproc.app import require_topics
from streamproc.errors import ConfigError


class FakeCluster:
    def __init__(self, *names: str) -> None:
        self._names = list(names)

    def list_topic_names(self) -> list[str]:
        return self._names


def test_present_topics_pass() -> None:
    require_topics(FakeCluster("a", "b", "c"), ["a", "b"])


def test_missing_topics_are_named_with_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        require_topics(FakeCluster("a"), ["a", "b.dlq", "b"])
    assert "topics missing in Kafka: b, b.dlq" in str(caught.value)
    assert "streamproc topics apply" in str(caught.value)
