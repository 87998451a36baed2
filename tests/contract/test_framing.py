"""contract.framing: every framed value round-trips, and nothing else is ever accepted."""

from __future__ import annotations

import contextlib
import struct
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.framing import FORMAT, CorruptValue, decode, encode

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_round_trip(value: Any) -> None:
    assert decode(encode(value)) == value


def test_header_is_format_then_crc() -> None:
    raw = encode({"a": 1})
    assert raw[0] == FORMAT
    assert struct.unpack_from(">I", raw, 1)[0] == zlib.crc32(raw[5:])


@given(JSON, st.data())
def test_any_flipped_bit_is_refused(value: Any, data: st.DataObject) -> None:
    raw = bytearray(encode(value))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(CorruptValue):
        decode(bytes(raw))


@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_corrupt_value(raw: bytes) -> None:
    with contextlib.suppress(CorruptValue):
        decode(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "too short"),
        (b"\x01\x00\x00", "too short"),
        (b"\x09" + encode(1)[1:], "unknown format 9"),
        (encode({"a": 1})[:-1], "checksum mismatch"),
        (struct.pack(">BI", FORMAT, zlib.crc32(b"{")) + b"{", "not JSON"),
    ],
)
def test_reasons(raw: bytes, reason: str) -> None:
    with pytest.raises(CorruptValue, match=reason):
        decode(raw)
