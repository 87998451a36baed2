"""contract.intake: the record the edge queues and the consumer reads, and spool file naming."""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.intake import (
    ROTATED_SUFFIX,
    SPOOL_GLOB,
    NotARecord,
    active_spool_name,
    event_id,
    read_record,
    record,
    rotated_spool_name,
    spool_dir,
    spool_file_id,
    spool_header,
)


def make(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "record_id": "r1",
        "kind": "event",
        "environment": "env",
        "project": "p",
        "key_kind": "client",
        "received_at": "2026-12-04T00:00:00.000Z",
        "dedup_id": None,
        "event": {"event": "clicked"},
    }
    fields.update(overrides)
    return record(**fields)  # type: ignore[arg-type]


def test_record_round_trip() -> None:
    assert read_record(make()) == {
        "id": "r1",
        "type": "event",
        "environment": "env",
        "project": "p",
        "keyKind": "client",
        "receivedAt": "2026-12-04T00:00:00.000Z",
        "dedupId": None,
        "event": {"event": "clicked"},
    }


def test_a_header_is_not_a_record() -> None:
    header = spool_header(42, "2026-12-04T00:00:00.000Z")
    assert header.endswith(b"\n")
    assert read_record(header) is None
    file_id = spool_file_id(header)
    assert file_id is not None and len(file_id) == 32
    assert spool_file_id(make()) is None
    assert spool_file_id(b"{") is None


@pytest.mark.parametrize(
    "raw",
    [b"{", b"[]", orjson.dumps({"id": "", "type": "t", "environment": "e", "event": {}}), make(event=[1])],
)
def test_not_records(raw: bytes) -> None:
    with pytest.raises(NotARecord):
        read_record(raw)


@given(st.binary(max_size=80))
def test_arbitrary_bytes(raw: bytes) -> None:
    with contextlib.suppress(NotARecord):
        read_record(raw)


def test_event_ids_are_deterministic_per_environment_and_dedup_id() -> None:
    assert event_id("e", "x") == event_id("e", "x") != event_id("f", "x")
    assert event_id("e", None) != event_id("e", None)
    assert len(event_id("e", "x")) == 32


def test_spool_names(tmp_path: Path) -> None:
    assert spool_dir(tmp_path) == tmp_path / "events"
    active, rotated = active_spool_name(7), rotated_spool_name(7, 99)
    assert rotated.endswith(ROTATED_SUFFIX)
    assert Path(active).match(SPOOL_GLOB) and Path(rotated).match(SPOOL_GLOB)
