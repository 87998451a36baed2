"""How every value of the contract is framed: ``[format byte][CRC32 big-endian][orjson payload]``.

LMDB values, Redis change sets and the Redis full state all use this framing. A value whose
format byte, checksum or payload does not match raises :class:`CorruptValue`; readers report it
and keep what they had, so a damaged write can never replace a good snapshot.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

FORMAT = 1
_HEADER = struct.Struct(">BI")


class CorruptValue(ValueError):
    """A stored value with a wrong format byte, checksum or payload."""


def encode(value: Any) -> bytes:
    payload = orjson.dumps(value)
    return _HEADER.pack(FORMAT, zlib.crc32(payload)) + payload


def payload(raw: bytes) -> bytes:
    """The JSON text of a framed value, its format byte and checksum checked but not parsed
    (for a reader that hands it on, such as the evaluator's flag entries)."""
    if len(raw) < _HEADER.size:
        raise CorruptValue("value too short")
    fmt, crc = _HEADER.unpack_from(raw)
    text = raw[_HEADER.size :]
    if fmt != FORMAT:
        raise CorruptValue(f"unknown format {fmt}")
    if zlib.crc32(text) != crc:
        raise CorruptValue("checksum mismatch")
    return text


def decode(raw: bytes) -> Any:
    text = payload(raw)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise CorruptValue(f"payload is not JSON: {e}") from None
