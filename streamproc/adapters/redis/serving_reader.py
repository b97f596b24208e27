"""Adapter: the read path that follows the serving pointer: each read goes to the namespace of
the version serving at that moment, read with that version's feature definitions."""

from __future__ import annotations

from collections.abc import Sequence

from streamproc.adapters.redis.client import AnyRedis
from streamproc.adapters.redis.serving import RedisServingPointer, RedisVersions
from streamproc.adapters.redis.stores import RedisFeatureStore, features_namespace
from streamproc.config.deployment import BASE_VERSION, version_namespace
from streamproc.config.pipeline import Features
from streamproc.core.features.reader import FeatureReader
from streamproc.core.features.state import FeatureValue


class ServingFeatureReader:
    """Features as the serving version has them. Both versions' namespaces exist while the
    pointer moves (the old one for its grace period), so a read never fails for the switch;
    it sees one version or the other, whole."""

    def __init__(self, client: AnyRedis, base: str, default: Features) -> None:
        """`default`: the definitions of a version that no replay recorded (v1's)."""
        self._client = client
        self._base = base
        self._pointer = RedisServingPointer(client, base)
        self._versions = RedisVersions(client, base)
        self._default = default
        self._readers: dict[str, FeatureReader] = {}

    async def get_many(
        self, entities: Sequence[str], wall_ms: int, at_ms: int | None = None
    ) -> tuple[str, dict[str, dict[str, FeatureValue]]]:
        """The serving version, and the entities' features in it."""
        version = (await self._pointer.read()).version
        reader = self._readers.get(version) or await self._reader(version)
        return version, await reader.get_many(entities, wall_ms, at_ms)

    async def _reader(self, version: str) -> FeatureReader:
        recorded = None
        if version != BASE_VERSION:  # v1's are the declaration's; a replay recorded the others'
            recorded = ((await self._versions.about(version)) or {}).get("features")
        features = self._default if recorded is None else Features.model_validate(recorded)
        namespace = version_namespace(self._base, version)
        reader = FeatureReader(
            features, RedisFeatureStore(self._client, features_namespace(namespace))
        )
        self._readers[version] = reader
        return reader
