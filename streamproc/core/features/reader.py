"""Core: the read path of the online features (an entity's current vector), for serving
and for the `features get` command."""

from __future__ import annotations

from collections.abc import Sequence

from streamproc.config.pipeline import Features
from streamproc.core.features.state import EntityState, FeatureStore, FeatureValue
from streamproc.core.features.view import ViewComputer


class FeatureReader:
    """The read path: an entity's current features, many entities in one round trip.

    Windows are evaluated at `at_ms` (event time; default: each entity's newest event). The
    TTL is enforced here, by the wall clock of the last write, not left to Redis' lazy expiry:
    a view not written for longer than its TTL reads as stale.
    """

    def __init__(self, features: Features, store: FeatureStore) -> None:
        self._views = [ViewComputer(view, features) for view in features.views]
        self._store = store

    async def get(
        self, entity: str, wall_ms: int, at_ms: int | None = None
    ) -> dict[str, FeatureValue]:
        return (await self.get_many([entity], wall_ms, at_ms))[entity]

    async def get_many(
        self, entities: Sequence[str], wall_ms: int, at_ms: int | None = None
    ) -> dict[str, dict[str, FeatureValue]]:
        keys = sorted({view.key(entity) for view in self._views for entity in entities})
        stored = await self._store.load(keys)
        out: dict[str, dict[str, FeatureValue]] = {entity: {} for entity in entities}
        for view in self._views:
            for entity in entities:
                state = EntityState.parse(stored.get(view.key(entity), {}))
                at = at_ms if at_ms is not None else (state.newest or wall_ms)
                stale = state.wall is not None and wall_ms - state.wall > view.ttl_ms
                out[entity].update(view.serve(state, at, stale=stale))
        return out
