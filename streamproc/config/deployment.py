"""Config: a deployment version, and the names of what it owns.

A Kappa deployment changes by replaying the log into a new version beside the serving one
(`streamproc replay --namespace v2`), then switching serving to it (`streamproc promote v2`).
Each version has its own Redis namespace, consumer group (and so its own model lineage on the
snapshot topic) and output topics. The first version, v1, is the deployment as it always ran:
its names carry no suffix. Every other version's Redis keys sit under the base namespace (one
ACL pattern covers them all), its group is `<app id>-<version>`, and its topics end in
`.<version>` before any role suffix (`.dlq`, `.late`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BASE_VERSION = "v1"
VERSION_PATTERN = r"^v[1-9][0-9]{0,5}$"
_VERSION = re.compile(VERSION_PATTERN)
# A topic's role suffixes: a version's DLQ of `t` is the DLQ of its `t`.
_ROLE_SUFFIXES = (".dlq", ".late")


def is_version(text: str) -> bool:
    return bool(_VERSION.match(text))


def versioned_topic(topic: str, version: str) -> str:
    """`topic` as `version` names it (unchanged for v1)."""
    if version == BASE_VERSION:
        return topic
    for role in _ROLE_SUFFIXES:
        if topic.endswith(role):
            return f"{versioned_topic(topic[: -len(role)], version)}{role}"
    return f"{topic}.{version}"


def shadow_topic(predictions: str, version: str) -> str:
    """Where a version that does not serve sends its predictions (v1's too, once demoted)."""
    return f"{predictions}.{version}"


def version_namespace(base: str, version: str) -> str:
    """The Redis namespace of `version` under the `base` namespace."""
    return base if version == BASE_VERSION else f"{base}:{version}"


def serving_key(base: str) -> str:
    """The Redis hash naming the serving version (and the one before it)."""
    return f"{base}:serving"


@dataclass(frozen=True, slots=True)
class Deployment:
    """One version of a deployment: `base_namespace` and `base_app_id` are the settings'."""

    version: str
    base_namespace: str
    base_app_id: str

    @property
    def is_base(self) -> bool:
        return self.version == BASE_VERSION

    @property
    def namespace(self) -> str:
        """The prefix of this version's Redis keys."""
        return version_namespace(self.base_namespace, self.version)

    @property
    def group(self) -> str:
        """The consumer group, transactional-id prefix and model lineage of this version."""
        return self.base_app_id if self.is_base else f"{self.base_app_id}-{self.version}"

    @property
    def serving_key(self) -> str:
        return serving_key(self.base_namespace)

    def topic(self, declared: str) -> str:
        return versioned_topic(declared, self.version)

    def renames(self, declared: tuple[str, ...]) -> dict[str, str]:
        """Declared output topics to this version's (empty for v1)."""
        return {t: self.topic(t) for t in declared if self.topic(t) != t}
