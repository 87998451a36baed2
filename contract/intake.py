"""The intake: how what SDKs post to the edge reaches the control plane, which stores it.

The edge validates each event, wraps it in an intake record and makes it durable in one of two
queues; the control plane's consumer reads both and stores each record once (by its id).

* **Record**: one JSON object ``{"id", "type", "environment", "project", "keyKind",
  "receivedAt", "dedupId", "event"}`` (:func:`record`, :func:`read_record`). ``id`` is
  deterministic when the client sent a de-duplication id (:func:`event_id`), so a retried
  request is stored once.
* **Spool** (``<data-dir>/events/``): ``spool-<pid>.jsonl`` is a writer's active file, held
  with an exclusive ``flock`` while the writer lives; its first line is a header
  ``{"spool": "<uuid>", "pid", "createdAt"}`` naming the file (so a consumer's byte offsets
  survive a rename), every other line one record. A full active file is renamed
  ``spool-<pid>-<ns>.rotated.jsonl`` and never written again.
* **Redis stream** ``flagedge:events``: entries with the fields ``id`` (the record id) and
  ``record`` (the record's JSON), added with ``MAXLEN ~`` :data:`STREAM_MAXLEN`.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any, TypedDict

import orjson

EVENTS_DIR = "events"
SPOOL_GLOB = "spool-*.jsonl"
ROTATED_SUFFIX = ".rotated.jsonl"

EVENTS_STREAM = "flagedge:events"
STREAM_MAXLEN = 1_000_000
STREAM_ID_FIELD = "id"
STREAM_RECORD_FIELD = "record"

MAX_ID_CHARS = 200

#: The edge's own count of what it evaluated (``server/evaluation_counts.py``): per environment,
#: ``{"hour": "YYYY-MM-DDTHH:00:00.000Z", "counts": [{"feature", "variation", "count"}]}``; the
#: control plane adds it to ``evaluation_counts`` (``control_plane/evaluation_counts.py``).
EVALUATION_COUNTS = "evaluation-counts"

# Releaseo's public writes (``server/releaseo.py`` validates them at the edge; the control plane's
# consumer stores each record once and applies it, ``control_plane/releaseo_intake.py``). The
# record's ``environment`` is :func:`releaseo_scope` of the project and ``event`` holds:
#: ``{"userId", "properties", "timestamp"?}``: an end user and their identified properties.
RELEASEO_IDENTIFY = "releaseo.identify"
#: ``{"id", "userId", "title", "description", "categoryId"?, "authorName"?}``: a submission (pending).
RELEASEO_SUBMIT = "releaseo.feature-request"
#: ``{"id", "requestId", "userId", "body", "authorName"?}``: a comment on an approved request.
RELEASEO_COMMENT = "releaseo.comment"
#: ``{"requestId", "userId", "voted"}``: the user's vote is now ``voted`` (set, not toggled).
RELEASEO_VOTE = "releaseo.vote"
#: ``{"itemId", "userId", "following"}``: the user follows a roadmap item now, or no longer.
RELEASEO_FOLLOW = "releaseo.follow"
#: ``{"userId", "event", "properties"?, "timestamp"?}``: a custom product event (``POST /e``).
RELEASEO_EVENT = "releaseo.event"
RELEASEO_TYPES = frozenset(
    {RELEASEO_IDENTIFY, RELEASEO_SUBMIT, RELEASEO_COMMENT, RELEASEO_VOTE, RELEASEO_FOLLOW, RELEASEO_EVENT}
)


class IntakeRecord(TypedDict):
    id: str
    type: str
    environment: str
    project: str | None
    keyKind: str | None
    receivedAt: str | None
    dedupId: str | None
    event: dict[str, Any]


def spool_dir(data_dir: Path) -> Path:
    return data_dir / EVENTS_DIR


def active_spool_name(pid: int) -> str:
    return f"spool-{pid}.jsonl"


def rotated_spool_name(pid: int, ns: int) -> str:
    return f"spool-{pid}-{ns}{ROTATED_SUFFIX}"


def spool_header(pid: int, created_at: str) -> bytes:
    """The first line of a new spool file."""
    return orjson.dumps({"spool": uuid.uuid4().hex, "pid": pid, "createdAt": created_at}) + b"\n"


def spool_file_id(header_line: bytes) -> str | None:
    """The id a spool file's header line gives it, or None if the line is not a header."""
    try:
        header = orjson.loads(header_line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(header, dict) and isinstance(header.get("spool"), str):
        return str(header["spool"])
    return None


def releaseo_scope(project_id: str) -> str:
    """The ``environment`` of a Releaseo record: its project (ids and dedup keys are per project)."""
    return f"releaseo:{project_id}"


def event_id(environment: str, dedup: str | None) -> str:
    """A record's id: derived from the client's de-duplication id when there is one, else random."""
    if dedup is None:
        return uuid.uuid4().hex
    return "d" + hashlib.sha256(f"{environment}\n{dedup}".encode()).hexdigest()[:31]


def record(
    *,
    record_id: str,
    kind: str,
    environment: str,
    project: str | None,
    key_kind: str,
    received_at: str,
    dedup_id: str | None,
    event: dict[str, Any],
) -> bytes:
    """One intake record as the JSON bytes of a spool line (without the newline) or stream entry."""
    value: IntakeRecord = {
        "id": record_id,
        "type": kind,
        "environment": environment,
        "project": project,
        "keyKind": key_kind,
        "receivedAt": received_at,
        "dedupId": dedup_id,
        "event": event,
    }
    return orjson.dumps(value)


class NotARecord(ValueError):
    """A line or stream entry that is not an intake record."""


def read_record(raw: bytes) -> IntakeRecord | None:
    """The record in ``raw``, None for a spool header; :class:`NotARecord` says why it is neither."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise NotARecord(f"not JSON ({len(raw)} bytes)") from None
    if not isinstance(value, dict):
        raise NotARecord("not an object")
    if "spool" in value:
        return None
    rid, kind, env, event = value.get("id"), value.get("type"), value.get("environment"), value.get("event")
    if not (
        isinstance(rid, str)
        and 0 < len(rid) <= MAX_ID_CHARS
        and isinstance(kind, str)
        and isinstance(env, str)
        and isinstance(event, dict)
    ):
        raise NotARecord("not an event record")

    def text(name: str) -> str | None:
        v = value.get(name)
        return v if isinstance(v, str) else None

    return {
        "id": rid,
        "type": kind,
        "environment": env,
        "project": text("project"),
        "keyKind": text("keyKind"),
        "receivedAt": text("receivedAt"),
        "dedupId": text("dedupId"),
        "event": event,
    }
