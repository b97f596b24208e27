"""Erasure in the core: whose data a subject is, its pseudonym, the pseudonymised clean order,
and the sweep over the stores (in-memory fakes)."""

from __future__ import annotations

import pytest

from streamproc.adapters.memory import InMemoryFeatureStore
from streamproc.config.pipeline import load_pipeline
from streamproc.config.tabular import load_declaration
from streamproc.core import canonical
from streamproc.core.erasure import (
    ERASED_FLAG,
    PSEUDONYM_PREFIX,
    Erasures,
    FeatureHashes,
    SubjectData,
    erase_subject,
    pseudonymise,
)
from streamproc.core.features.stage import FeatureStage
from streamproc.core.features.view import entity_keys
from streamproc.core.normalize import Normalizer
from streamproc.errors import ConfigError
from streamproc.tools.erase import subject_entity
from tests.builders import read_order
from tests.conftest import REPO

SPEC = load_pipeline(REPO / "pipelines/shop_orders.yaml")
KEY = b"unit-pii-key"


def test_a_pseudonym_is_stable_and_depends_on_the_key_and_the_subject() -> None:
    erasures = Erasures(KEY, set())
    pseudonym = erasures.pseudonym("C-1")
    assert pseudonym.startswith(PSEUDONYM_PREFIX)
    assert pseudonym == Erasures(KEY, {"anything"}).pseudonym("C-1")
    assert pseudonym != erasures.pseudonym("C-2")
    assert pseudonym != Erasures(b"another key", set()).pseudonym("C-1")
    # not the keyed hash the e-mail gets under the same key: no pseudonym is an e-mail's hash
    assert pseudonym.removeprefix(PSEUDONYM_PREFIX) not in canonical.keyed_hash(KEY, "C-1")


def test_only_an_erased_entity_is_answered_with_its_pseudonym() -> None:
    erased: set[str] = set()
    erasures = Erasures(KEY, erased)
    assert erasures.erased("C-1") is None
    erased.add(erasures.pseudonym("C-1"))  # the set is the follower's: the stages see it grow
    assert erasures.erased("C-1") == erasures.pseudonym("C-1")
    assert erasures.erased("C-2") is None
    assert erasures.erased(None) is None


def test_a_customers_order_keeps_nothing_that_links_it_back() -> None:
    clean = Normalizer(SPEC, KEY).normalize(read_order(customer_id="C-1"))
    assert clean["given_name"] == "Ada" and clean["email_hash"] is not None
    pseudonymise(clean, "erased:p")
    assert clean["entity_key"] == clean["customer_id"] == "erased:p"
    assert [clean[name] for name in ("given_name", "family_name", "email_hash")] == [None] * 3
    assert clean["quality_flags"][-1] == ERASED_FLAG
    assert clean["amount_gross_eur"] == 119.0  # what the fraud model needs stays


def test_a_guest_stays_a_guest_under_its_pseudonym() -> None:
    clean = Normalizer(SPEC, KEY).normalize(read_order(customer_id=None))
    pseudonymise(clean, "erased:p")
    assert clean["entity_key"] == "erased:p"
    assert clean["customer_id"] is None
    assert "guest" in clean["quality_flags"]


def test_the_subject_of_a_customer_id_or_an_e_mail_is_the_entity_its_orders_have() -> None:
    normalizer = Normalizer(SPEC, KEY)
    customer = normalizer.normalize(read_order(customer_id="C-1"))
    guest = normalizer.normalize(read_order(customer_id=None, email=" Ada.Lovelace@Example.org "))
    assert normalizer.subject_entity("customer_id", "C-1") == customer["entity_key"] == "C-1"
    assert normalizer.subject_entity("email", "ada.lovelace@example.org") == guest["entity_key"]
    assert normalizer.subject_entity("country", "DE") is None  # no part of the entity key
    assert normalizer.subject_entity("email", "not an address") is None


def test_the_erase_command_takes_the_declared_fields_only() -> None:
    assert subject_entity(SPEC, KEY, "C-1", None) == "C-1"  # customer_id: the first part
    assert subject_entity(SPEC, KEY, "a@b.org", "email").startswith("guest:")
    with pytest.raises(ConfigError, match="built from customer_id, email"):
        subject_entity(SPEC, KEY, "DE", "country")
    tabular = load_declaration(REPO / "pipelines/phishing.yaml")
    with pytest.raises(ConfigError, match="entity key"):
        subject_entity(tabular, KEY, "x", "email")


class _Counting:
    """A SubjectData that counts what it was asked to erase."""

    def __init__(self, found: int) -> None:
        self.asked: list[str] = []
        self._found = found

    async def erase(self, entity: str) -> int:
        self.asked.append(entity)
        return self._found


async def test_the_sweep_asks_every_store_for_every_name_of_the_subject() -> None:
    store = InMemoryFeatureStore()
    store.hashes = {
        "v1:orders:{C-1}": {"t": "1"},
        "v1:orders:{erased:p}": {},
        "v1:orders:{C-2}": {},
    }
    counting = _Counting(found=2)
    features = FeatureHashes(SPEC.features, store)
    stores: dict[str, SubjectData] = {"features": features, "other": counting}
    deleted = await erase_subject(["C-1", "erased:p"], stores)
    assert deleted == {"features": 2, "other": 4}
    assert counting.asked == ["C-1", "erased:p"]
    assert list(store.hashes) == ["v1:orders:{C-2}"]


def test_a_subjects_feature_keys_are_every_views_in_every_version_so_far() -> None:
    features = SPEC.features.model_copy(update={"version": 3})
    [view] = FeatureStage(features, InMemoryFeatureStore()).views
    assert view.key("C-1") == "v3:orders:{C-1}"  # the key the feature stage writes
    assert entity_keys(features, "C-1") == [f"v{v}:orders:{{C-1}}" for v in (1, 2, 3)]
