"""Content fingerprints: what makes two orders the same content."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streamproc.core.dedupe import fingerprint

FIELDS = ["entity_key", "amount_gross_eur", "items"]


def _clean(**overrides: Any) -> dict[str, Any]:
    return {"entity_key": "c1", "amount_gross_eur": 119.0, "items": 2, **overrides}


def test_same_content_same_fingerprint() -> None:
    assert fingerprint(_clean(), FIELDS) == fingerprint(_clean(event_id="other"), FIELDS)


def test_any_content_field_changes_it() -> None:
    base = fingerprint(_clean(), FIELDS)
    for changed in (_clean(entity_key="c2"), _clean(amount_gross_eur=119.01), _clean(items=3)):
        assert fingerprint(changed, FIELDS) != base


def test_amounts_are_compared_to_the_cent() -> None:
    assert fingerprint(_clean(amount_gross_eur=119.0), FIELDS) == fingerprint(
        _clean(amount_gross_eur=119.000000001), FIELDS
    )


def test_no_entity_no_fingerprint() -> None:
    assert fingerprint(_clean(entity_key=None), FIELDS) is None


@given(
    fields=st.permutations(FIELDS + ["payment_method"]),
    method=st.sampled_from(["card", "paypal"]),
    spaces=st.tuples(st.sampled_from(["", " ", "  "]), st.sampled_from(["", " ", "\t"])),
    upper=st.booleans(),
)
def test_stable_under_field_order_whitespace_and_case(
    fields: list[str], method: str, spaces: tuple[str, str], upper: bool
) -> None:
    plain = fingerprint(_clean(payment_method=method), FIELDS + ["payment_method"])
    varied = f"{spaces[0]}{method.upper() if upper else method}{spaces[1]}"
    assert fingerprint(_clean(payment_method=varied), fields) == plain
