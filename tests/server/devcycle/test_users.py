"""DevCycle users from query strings, bodies and OpenFeature contexts (server/devcycle/users.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.devcycle import users


def test_openfeature_contexts_map_as_devcycles_provider_maps_them() -> None:
    """DevCycleProvider.devcycleUserFromContext (@devcycle/nodejs-server-sdk 1.55.9)."""
    context = {
        "targetingKey": "u-1",
        "email": "a@example.com",
        "country": "DE",
        "appVersion": "1.2.3",
        "appBuild": 42,
        "name": 7,  # not a string: dropped
        "language": "de",
        "platform": "iOS",  # not a known property: custom data
        "plan": "pro",
        "seats": 12,
        "beta": True,
        "gone": None,
        "nested": {"a": 1},  # objects and arrays are dropped
        "list": [1],
        "customData": {"tier": "gold", "deep": {"x": 1}},
        "privateCustomData": {"ssn": "x", "n": 1.5},
    }
    assert users.from_openfeature(context) == {
        "user_id": "u-1",
        "email": "a@example.com",
        "country": "DE",
        "appVersion": "1.2.3",
        "appBuild": 42,
        "language": "de",
        "customData": {"platform": "iOS", "plan": "pro", "seats": 12, "beta": True, "gone": None, "tier": "gold"},
        "privateCustomData": {"ssn": "x", "n": 1.5},
    }


@pytest.mark.parametrize(
    ("context", "user_id"),
    [
        ({"targetingKey": "a", "user_id": "b", "userId": "c"}, "a"),
        ({"user_id": "b", "userId": "c"}, "b"),
        ({"userId": "c"}, "c"),
        ({"targetingKey": "", "userId": "c"}, "c"),
    ],
)
def test_the_user_id_comes_from_targeting_key_then_user_id_then_user_id(context: dict[str, Any], user_id: str) -> None:
    assert users.from_openfeature(context)["user_id"] == user_id


@pytest.mark.parametrize("context", [{}, {"targetingKey": ""}, {"targetingKey": 5}, {"email": "a@b"}])
def test_a_context_without_a_string_user_id_misses_the_targeting_key(context: dict[str, Any]) -> None:
    with pytest.raises(users.MissingUserId):
        users.from_openfeature(context)


def test_later_keys_win_between_custom_data_and_flat_keys() -> None:
    assert users.from_openfeature({"targetingKey": "u", "plan": "a", "customData": {"plan": "b"}})["customData"] == {
        "plan": "b"
    }
    assert users.from_openfeature({"targetingKey": "u", "customData": {"plan": "b"}, "plan": "a"})["customData"] == {
        "plan": "a"
    }


def test_query_users_keep_custom_data_types() -> None:
    pairs = [
        ("sdkKey", "client-x"),
        ("user_id", "u"),
        ("customData", '{"seats": 3, "beta": true, "plan": "pro", "none": null}'),
        ("appBuild", "12"),
        ("isAnonymous", "false"),
        ("lastSeenDate", "1718452800000"),
    ]
    assert users.from_query(pairs) == {
        "user_id": "u",
        "customData": {"seats": 3, "beta": True, "plan": "pro", "none": None},
        "appBuild": 12.0,
        "isAnonymous": False,
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u", "email": 1}, "email"),
        ({"user_id": "u", "customData": {"x": [1]}}, "customData.x"),
        ({"user_id": "u", "customData": {str(i): i for i in range(501)}}, "customData"),
        ({"user_id": "u", "appBuild": float("inf")}, "appBuild"),
        ({"user_id": "u", "country": "x" * 1025}, "country"),
    ],
)
def test_bad_bodies_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(users.Invalid) as e:
        users.from_body(body)
    assert e.value.field == field


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
FIELD_NAMES = st.sampled_from([*users.STRING_FIELDS, *users.NUMBER_FIELDS, *users.DATA_FIELDS, "isAnonymous", "x"])


@given(st.dictionaries(FIELD_NAMES, JSON, max_size=8) | JSON)
def test_any_body_is_a_user_or_invalid(body: Any) -> None:
    try:
        user = users.from_body(body)
    except users.Invalid as e:
        assert e.field and e.message
    else:
        assert isinstance(user["user_id"], str) and user["user_id"]


@given(st.lists(st.tuples(FIELD_NAMES | st.text(max_size=8), st.text(max_size=30)), max_size=10))
def test_any_query_is_a_user_or_invalid(pairs: list[tuple[str, str]]) -> None:
    try:
        users.from_query(pairs)
    except users.Invalid as e:
        assert e.field


@given(st.dictionaries(st.sampled_from([*users.OPENFEATURE_ID_KEYS, "email", "appBuild", "customData", "k"]), JSON))
def test_any_openfeature_context_is_a_user_or_invalid(context: dict[str, Any]) -> None:
    try:
        user = users.from_openfeature(context)
    except users.Invalid as e:
        assert e.field
    else:
        assert all(v is None or isinstance(v, str | bool | int | float) for v in user.get("customData", {}).values())
