"""contract.redis_protocol: change sets and full states as they travel through Redis."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.framing import CorruptValue, encode
from contract.redis_protocol import (
    FullTables,
    RedisKeys,
    decode_change,
    decode_full,
    encode_change,
    encode_full,
    redact,
)
from contract.store import TABLES, ChangeSet


def test_keys() -> None:
    keys = RedisKeys("p")
    assert (keys.version, keys.full, keys.index, keys.channel) == ("p:version", "p:full", "p:changes", "p:versions")
    assert keys.change(12) == keys.change_prefix + "12" == "p:change:12"


def test_change_round_trip() -> None:
    change = ChangeSet(environments={"e": {"document": {}}}, sdk_keys={"k": None}, widgets={"w": {"x": 1}})
    assert decode_change(encode_change(3, change), 3) == change


def test_change_for_another_version_is_refused() -> None:
    with pytest.raises(CorruptValue, match="holds version 3, expected 4"):
        decode_change(encode_change(3, ChangeSet()), 4)


def test_full_round_trip_drops_nothing() -> None:
    tables: FullTables = {"environments": {"e": {"document": {}}}, "widgets": {"w": {"x": 1}}}
    version, decoded = decode_full(b"9", encode_full(9, tables))
    assert version == 9
    assert decoded == {table: tables.get(table, {}) for table in TABLES}


@pytest.mark.parametrize(
    ("field", "payload", "reason"),
    [
        (None, {"version": 1}, "no full state"),
        (b"2", {"version": 1}, "hash says 2"),
        (b"x", {"version": 1}, "not a number"),
        (b"1", {"version": 0}, "no valid version"),
        (b"1", {"version": True}, "no valid version"),
        (b"1", {"version": 1, "widgets": []}, "widgets is not an object"),
        (b"1", {"version": 1, "widgets": {"w": None}}, r"widgets\['w'\] is not an object"),
    ],
)
def test_bad_full_states(field: bytes | None, payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(CorruptValue, match=reason):
        decode_full(field, encode(payload))


PAYLOADS = st.recursive(
    st.none() | st.integers(-(2**53), 2**53) | st.text(max_size=5),
    lambda children: st.dictionaries(st.sampled_from(["version", *TABLES, "x"]) | st.text(max_size=4), children),
)


@given(PAYLOADS)
def test_any_payload_decodes_or_raises_corrupt_value(payload: Any) -> None:
    for attempt in (lambda: decode_change(encode(payload), 1), lambda: decode_full(b"1", encode(payload))):
        with contextlib.suppress(CorruptValue):
            attempt()


def test_redact_hides_only_the_password() -> None:
    assert redact("redis://u:secret@h:6379/0") == "redis://u:***@h:6379/0"
    assert redact("redis://h:6379") == "redis://h:6379"
