"""Reflag SDK event intake: ``POST /features/events``, ``/user``, ``/company``, ``/event``, ``/feedback``, ``/bulk``.

The edge validates each event, gives it an id and appends it to a durable local spool; it never
stores events itself (``control_plane/events_consumer.py`` moves them into SQLite). A request is
acknowledged (``{"success": true}``) only after its events are written and fsynced, so an
acknowledged event survives kill -9 and power loss. A request with one invalid event writes
nothing and answers 400 naming the field (``[3].userId`` inside a bulk).

Event ids: ``client_dedup_id`` in the event (or the ``Idempotency-Key`` header; inside a bulk each
item gets ``{key}:{index}``) makes the id deterministic per environment, so a retried request is
stored once; otherwise the id is a random UUID.

Each accepted event becomes an intake record (``contract/intake.py`` defines the record, the
spool files and the stream). Spool files (``<data-dir>/events/``, one writer per process): the
active file is opened in append mode and held with an exclusive ``flock`` for the life of the
process (the consumer takes the lock to tell a dead writer's file from a live one); when it passes
``max_bytes`` it is renamed to a rotated name (never written again) and a new one is started.

Intake cannot fill the disk (:class:`EventIntake`): requests are rate-limited per client address
and per SDK key (429 + ``Retry-After``, ``--intake-rate-per-address`` / ``--intake-rate-per-key``),
and the spool is bounded (:class:`SpoolBudget`): past ``--intake-max-spool-bytes`` in all spool
files, or with less than ``--intake-min-free-bytes`` free on its disk, new events are refused
with 503 + ``Retry-After``; acknowledged events are never dropped. Every refusal is counted in
``flagedge_intake_refused_total{reason=...}`` and logged at most once per reason per 10 s.

With a Redis URL (``--redis-url`` / ``FLAGEDGE_REDIS_URL``) each accepted event is instead added to
the stream ``flagedge:events`` (``XADD ... MAXLEN ~ 1000000``). The request is acknowledged once
Redis has answered. Redis never fails or stalls an SDK call: the attempt has short socket timeouts and an
overall ~200 ms deadline, and on any failure that request's events go to the spool as above (the
edge then skips Redis for a second before trying again). Events that reach both (a slow Redis that
answered after the deadline) are stored once: the control plane de-duplicates by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import fnmatch
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response

from contract import intake
from contract.client_address import ClientAddress
from contract.intake import EVENTS_STREAM, STREAM_MAXLEN, event_id, spool_dir
from contract.redis_protocol import client as redis_client
from contract.redis_protocol import failures as redis_failures
from contract.redis_protocol import redact
from server.auth import sdk_key
from server.errors import EdgeError, read_limited, request_id
from server.ratelimit import RateLimited, RateLimiter, check_all
from server.settings import EdgeSettings
from server.state import EdgeState, SdkKey

if TYPE_CHECKING:
    import redis

log = logging.getLogger("server.events")

Endpoint = Callable[[Request], Awaitable[Response]]
DEFAULT_SPOOL_BYTES = 64 << 20
MIN_ROTATE_BYTES = 64 << 10

REDIS_SOCKET_TIMEOUT = 0.1  # connect, and each read of a reply
REDIS_DEADLINE = 0.2  # the whole attempt, after which the request spools instead
REDIS_RETRY_AFTER = 1.0  # after a failure, go straight to the spool for this long

# Rate limits (server/ratelimit.py): a bucket holds this many seconds of its rate, and a request
# costs one token plus one per BODY_BYTES_PER_TOKEN of its body.
INTAKE_BURST_SECONDS = 2.0
BODY_BYTES_PER_TOKEN = 64 << 10

# Why a request was refused (``flagedge_intake_refused_total{reason=...}``) and, for a full spool
# or disk, the Retry-After: the consumer empties the spool within seconds, low disk takes longer.
RATE_LIMITED_KEY = "rate_limited_key"
RATE_LIMITED_ADDRESS = "rate_limited_address"
SPOOL_ERROR = "spool_error"
REFUSAL_LOG_INTERVAL = 10.0

MAX_BULK_ITEMS = 1000
MAX_ID_CHARS = 256
MAX_NAME_CHARS = 256
MAX_TEXT_CHARS = 10_000
MAX_DEDUP_CHARS = 128
MAX_OBJECT_KEYS = 500
MAX_OBJECT_BYTES = 64 * 1024
MAX_LIST_ITEMS = 1000

FLAG_EVENT = "feature-flag-event"
TYPES = (FLAG_EVENT, "user", "company", "event", "feedback", "prompt-event")


class EdgeLike(Protocol):
    state: EdgeState
    settings: EdgeSettings
    metric_sources: list[Callable[[], list[str]]]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---------------------------------------------------------------------------------------------
# Validation: each event type's fields, normalized; anything else in the body is dropped.


class Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Fields:
    """Reads one event object; ``prefix`` (``[3].`` in a bulk) goes in front of every field name."""

    def __init__(self, body: Any, prefix: str = "") -> None:
        if not isinstance(body, dict):
            raise Invalid(prefix.rstrip(".") or "body", "must be a JSON object")
        self.body = body
        self.prefix = prefix
        self.out: dict[str, Any] = {}

    def fail(self, name: str, message: str) -> Invalid:
        return Invalid(self.prefix + name, message)

    def present(self, name: str) -> bool:
        return self.body.get(name) is not None

    def identifier(self, name: str, *, required: bool) -> str | None:
        """A user/company id: a non-empty string or an integer (Reflag examples send numbers)."""
        value = self.body.get(name)
        if value is None:
            if required:
                raise self.fail(name, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(name, "must be a string or an integer")
        text = str(value)
        if not text or len(text) > MAX_ID_CHARS:
            raise self.fail(name, f"must be 1 to {MAX_ID_CHARS} characters")
        self.out[name] = text
        return text

    def text(self, name: str, *, required: bool, limit: int = MAX_NAME_CHARS) -> str | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise self.fail(name, "is required")
            return None
        if not isinstance(value, str):
            raise self.fail(name, "must be a string")
        if not value or len(value) > limit:
            raise self.fail(name, f"must be 1 to {limit} characters")
        self.out[name] = value
        return value

    def obj(self, name: str) -> None:
        value = self.body.get(name)
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.fail(name, "must be an object")
        if len(value) > MAX_OBJECT_KEYS:
            raise self.fail(name, f"must have at most {MAX_OBJECT_KEYS} keys")
        try:
            size = len(orjson.dumps(value))
        except TypeError:  # nesting deeper than orjson serializes
            raise self.fail(name, "is nested too deeply") from None
        if size > MAX_OBJECT_BYTES:
            raise self.fail(name, f"must serialize to at most {MAX_OBJECT_BYTES} bytes")
        self.out[name] = value

    def timestamp(self, name: str = "timestamp") -> None:
        value = self.text(name, required=False, limit=64)
        if value is None:
            return
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise self.fail(name, "must be an ISO 8601 date-time") from None

    def integer(self, name: str, *, low: int, high: int) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(name, f"must be an integer from {low} to {high}")
        self.out[name] = value
        return value

    def number(self, name: str, *, low: float, high: float) -> float | None:
        """A JSON number (integer or fraction) within ``low``..``high``; kept as sent (4 stays 4)."""
        value = self.body.get(name)
        if value is None:
            return None
        # (orjson refuses NaN and infinities in a body; the range check would refuse them too.)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise self.fail(name, f"must be a number from {low:g} to {high:g}")
        self.out[name] = value
        return value

    def boolean_list(self, name: str) -> None:
        value = self.body.get(name)
        if value is None:
            return
        if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS or not all(isinstance(v, bool) for v in value):
            raise self.fail(name, f"must be a list of at most {MAX_LIST_ITEMS} booleans")
        self.out[name] = value

    def string_list(self, name: str) -> None:
        value = self.body.get(name)
        if value is None:
            return
        if (
            not isinstance(value, list)
            or len(value) > MAX_LIST_ITEMS
            or not all(isinstance(v, str) and len(v) <= MAX_NAME_CHARS for v in value)
        ):
            raise self.fail(name, f"must be a list of at most {MAX_LIST_ITEMS} strings")
        self.out[name] = value

    def dedup(self) -> str | None:
        value = self.body.get("client_dedup_id")
        if value is None:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= MAX_DEDUP_CHARS or not value.isprintable():
            raise self.fail("client_dedup_id", f"must be 1 to {MAX_DEDUP_CHARS} printable characters")
        return value


def _flag_event(f: Fields) -> None:
    action = f.text("action", required=True, limit=64)
    if action is not None and not all(c.isalnum() or c in "-_" for c in action):
        raise f.fail("action", "must be letters, digits, '-' or '_' (check, evaluate, check-config, ...)")
    f.text("key", required=True)
    targeting = f.body.get("targetingVersion")
    if targeting is not None:
        f.integer("targetingVersion", low=0, high=2**53)
    f.obj("evalContext")
    result = f.body.get("evalResult")
    if result is not None:
        if isinstance(result, bool):
            f.out["evalResult"] = result
        elif isinstance(result, dict):
            f.obj("evalResult")
        else:
            raise f.fail("evalResult", "must be a boolean or a {key, payload} object")
    f.boolean_list("evalRuleResults")
    f.string_list("evalMissingFields")


def _user(f: Fields) -> None:
    f.identifier("userId", required=True)
    f.obj("attributes")
    f.obj("context")
    f.timestamp()


def _company(f: Fields) -> None:
    f.identifier("companyId", required=True)
    f.identifier("userId", required=False)
    f.obj("attributes")
    f.obj("context")
    f.timestamp()


def _event(f: Fields) -> None:
    f.text("event", required=True)
    f.identifier("userId", required=True)
    f.identifier("companyId", required=False)
    f.obj("attributes")
    f.obj("context")
    f.timestamp()


def _feedback(f: Fields) -> None:
    if not f.present("featureId") and not f.present("key"):
        raise f.fail("key", "featureId or key (the flag key) is required")
    f.text("featureId", required=False)
    f.text("key", required=False)
    f.identifier("userId", required=True)
    f.identifier("companyId", required=False)
    # The Reflag API documents score as "Number (1-5)": 4.5 is a valid score.
    score = f.number("score", low=1, high=5)
    comment = f.body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise f.fail("comment", "must be a string")
    if isinstance(comment, str) and comment.strip():
        f.text("comment", required=False, limit=MAX_TEXT_CHARS)
    else:
        comment = None
    if score is None and comment is None:
        raise f.fail("score", "a score (a number from 1 to 5) or a non-empty comment is required")
    for name in ("question", "promptedQuestion"):
        f.text(name, required=False, limit=MAX_TEXT_CHARS)
    for name in ("promptId", "feedbackId", "source"):
        f.text(name, required=False)
    f.timestamp()


def _prompt_event(f: Fields) -> None:
    action = f.text("action", required=True, limit=64)
    if action not in ("received", "shown", "dismissed"):
        raise f.fail("action", "must be received, shown or dismissed")
    f.text("featureId", required=True)
    f.text("promptId", required=True)
    f.identifier("userId", required=True)
    f.text("promptedQuestion", required=False, limit=MAX_TEXT_CHARS)
    f.timestamp()


VALIDATORS: dict[str, Callable[[Fields], None]] = {
    FLAG_EVENT: _flag_event,
    "user": _user,
    "company": _company,
    "event": _event,
    "feedback": _feedback,
    "prompt-event": _prompt_event,
}


@dataclass(frozen=True)
class Event:
    type: str
    fields: dict[str, Any]
    dedup: str | None


def validate(kind: str, body: Any, prefix: str = "") -> Event:
    """One event of ``kind`` from a request body (or bulk item); Invalid names the first bad field."""
    f = Fields(body, prefix)
    VALIDATORS[kind](f)
    return Event(kind, f.out, f.dedup())


def validate_bulk(body: Any) -> list[Event]:
    if not isinstance(body, list):
        raise Invalid("body", "a bulk request is a JSON array of events")
    if len(body) > MAX_BULK_ITEMS:
        raise Invalid("body", f"at most {MAX_BULK_ITEMS} events per bulk request")
    events = []
    for i, item in enumerate(body):
        prefix = f"[{i}]."
        if not isinstance(item, dict):
            raise Invalid(f"[{i}]", "must be a JSON object")
        kind = item.get("type")
        # isinstance first: an unhashable type ([] or {}) would raise TypeError (a 500).
        if not isinstance(kind, str) or kind not in VALIDATORS:
            raise Invalid(f"{prefix}type", f"must be one of {list(TYPES)}")
        events.append(validate(str(kind), item, prefix))
    return events


# ---------------------------------------------------------------------------------------------
# The spool.


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


SPOOL_FULL = "spool_full"
DISK_LOW = "disk_low"
REFUSALS = (RATE_LIMITED_KEY, RATE_LIMITED_ADDRESS, SPOOL_FULL, DISK_LOW, SPOOL_ERROR)
RETRY_AFTER = {SPOOL_FULL: "5", DISK_LOW: "30"}


class SpoolRefused(Exception):
    """The spool takes no more events now: ``reason`` is :data:`SPOOL_FULL` or :data:`DISK_LOW`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class SpoolBudget:
    """What the spool may take of the disk: at most ``max_bytes`` in all its files together (every
    worker's, consumed or not: what is on disk), and never the last ``min_free_bytes`` of the
    file system (that space is for the control plane's SQLite and LMDB on the same disk, so admin
    writes keep working while intake is under pressure). 0 turns either bound off.

    :meth:`admit` measures the directory on every call (a scandir and a statvfs: microseconds,
    next to the fsync every append makes). Within one worker the bound is exact (appends are
    serialized); workers appending at the same instant may together pass it by one request each.
    """

    max_bytes: int
    min_free_bytes: int

    def usage(self, directory: Path) -> tuple[int, int]:
        """Bytes of every spool file in ``directory`` and free bytes of its file system."""
        used = 0
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if fnmatch.fnmatchcase(entry.name, intake.SPOOL_GLOB):
                        with contextlib.suppress(FileNotFoundError):  # consumed meanwhile
                            used += entry.stat().st_size
        except FileNotFoundError:
            pass
        st = os.statvfs(directory if directory.is_dir() else directory.parent)
        return used, st.f_bavail * st.f_frsize

    def admit(self, directory: Path, size: int) -> None:
        """Return if ``size`` more bytes may be spooled now, else raise :class:`SpoolRefused`."""
        used, free = self.usage(directory)
        if self.min_free_bytes > 0 and free - size < self.min_free_bytes:
            raise SpoolRefused(DISK_LOW, f"{free} bytes free on the spool's disk, {self.min_free_bytes} are kept")
        if self.max_bytes > 0 and used + size > self.max_bytes:
            raise SpoolRefused(SPOOL_FULL, f"the spool holds {used} of its {self.max_bytes} bytes")


def rotate_bytes(max_spool_bytes: int, workers: int) -> int:
    """The size at which a worker rotates its spool file. The consumer removes rotated files once
    stored but not a live writer's active file, whose consumed bytes stay on disk until rotation:
    all workers' active files together stay under a quarter of the spool's bound."""
    if max_spool_bytes <= 0:
        return DEFAULT_SPOOL_BYTES
    return max(MIN_ROTATE_BYTES, min(DEFAULT_SPOOL_BYTES, max_spool_bytes // (4 * max(1, workers))))


class Spool:
    """Appends batches of event lines to this process's spool file, fsynced before returning;
    with a ``budget``, a batch it does not admit raises :class:`SpoolRefused` and writes nothing."""

    def __init__(
        self, directory: Path, max_bytes: int = DEFAULT_SPOOL_BYTES, budget: SpoolBudget | None = None
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.budget = budget
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._size = 0

    @property
    def path(self) -> Path:
        return self.directory / intake.active_spool_name(os.getpid())

    def _open(self) -> int:
        """This process's active file, locked, with a header line; reopened after a fork or unlink."""
        if self._fd is not None:
            if self._pid == os.getpid():
                return self._fd
            # Inherited across a fork: the parent's file (closing this copy keeps the parent's lock).
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path
        while True:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the consumer removed a dead writer's file between open and lock
        size = os.fstat(fd).st_size
        if size == 0:
            _write_all(fd, intake.spool_header(os.getpid(), now_iso()))
            os.fsync(fd)
            _fsync_dir(self.directory)
        else:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # a torn line from a writer that died mid-write
                    _write_all(fd, b"\n")
        self._fd, self._pid, self._size = fd, os.getpid(), os.fstat(fd).st_size
        return fd

    def _rotate(self) -> None:
        assert self._fd is not None
        target = self.directory / intake.rotated_spool_name(os.getpid(), time.time_ns())
        os.rename(self.path, target)
        _fsync_dir(self.directory)
        os.close(self._fd)
        self._fd = None

    def append(self, lines: Iterable[bytes]) -> None:
        data = b"".join(lines)
        if not data:
            return
        with self._lock:
            if self.budget is not None:
                self.budget.admit(self.directory, len(data))
            fd = self._open()
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError:
                # The file may now end in a partial line; start over on a fresh descriptor.
                with contextlib.suppress(OSError):
                    os.close(fd)
                self._fd = None
                raise
            self._size += len(data)
            if self._size >= self.max_bytes:
                self._rotate()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------------------------------------
# The Redis stream.


class RedisQueue:
    """Adds event records to the Redis stream; a failure tells the caller to spool them instead."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = EVENTS_STREAM,
        maxlen: int = STREAM_MAXLEN,
        socket_timeout: float = REDIS_SOCKET_TIMEOUT,
        deadline: float = REDIS_DEADLINE,
        retry_after: float = REDIS_RETRY_AFTER,
    ) -> None:
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        self.socket_timeout = socket_timeout
        self.deadline = deadline
        self.retry_after = retry_after
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._failing = False

    def _redis(self) -> redis.Redis:
        # Made on first use, inside the worker process (redis-py's pool also resets after a fork).
        with self._lock:
            if self._client is None:
                self._client = redis_client(
                    self.url,
                    name="flagedge-edge-events",
                    socket_timeout=self.socket_timeout,
                    connect_timeout=self.socket_timeout,
                )
            return self._client

    def available(self) -> bool:
        """False for ``retry_after`` seconds after a failure: those requests spool without trying."""
        return time.monotonic() >= self._down_until

    def add(self, records: list[tuple[str, bytes]]) -> None:
        """XADD each ``(event id, record JSON)`` in one round trip; raises on any Redis failure."""
        pipe = self._redis().pipeline(transaction=False)
        for record_id, record in records:
            pipe.xadd(
                self.stream,
                {intake.STREAM_ID_FIELD: record_id, intake.STREAM_RECORD_FIELD: record},
                maxlen=self.maxlen,
                approximate=True,
            )
        pipe.execute()

    async def queue(self, records: list[tuple[str, bytes]]) -> bool:
        """True once Redis holds every record; False (after at most ~``deadline``) means: spool them."""
        if not self.available():
            return False
        try:
            # A thread that outlives the deadline may still add the records: the consumer
            # de-duplicates them against the spooled copies by id.
            await asyncio.wait_for(asyncio.to_thread(self.add, records), self.deadline)
        except redis_failures() as e:
            self._down_until = time.monotonic() + self.retry_after
            if not self._failing:
                self._failing = True
                log.warning(
                    "queueing SDK events on Redis at %s failed (%s); spooling locally until it answers",
                    redact(self.url),
                    type(e).__name__ if isinstance(e, TimeoutError) else e,
                )
            return False
        if self._failing:
            self._failing = False
            log.info("Redis at %s takes SDK events again", redact(self.url))
        return True

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


# ---------------------------------------------------------------------------------------------
# Routes.


async def read_body(request: Request, limit: int, timeout: float = 30.0) -> tuple[Any, int]:
    """The JSON body and its size in bytes, at most ``limit`` bytes, all of it within ``timeout`` seconds."""
    raw = await read_limited(request, limit, timeout)
    if not raw.strip():
        raise EdgeError(400, "a JSON body is required", field="body")
    try:
        return orjson.loads(raw), len(raw)
    except orjson.JSONDecodeError as e:
        # The parser's reason says what is wrong (e.g. "depth limit exceeded" for deep nesting).
        raise EdgeError(400, f"the body is not valid JSON: {e}", field="body") from None


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 0 < len(key) <= MAX_DEDUP_CHARS or not key.isprintable():
        raise EdgeError(
            400, f"Idempotency-Key must be 1 to {MAX_DEDUP_CHARS} printable characters", field="Idempotency-Key"
        )
    return key


def _accepted(request: Request) -> Response:
    return Response(b'{"success":true}', media_type="application/json", headers={"X-Request-Id": request_id(request)})


class EventIntake:
    """The event routes of one worker: one spool (and Redis queue) shared by every event kind, the
    intake's rate limits and the counts of what it refused (``/metrics``).

    A request is checked, in this order, against: its SDK key (401/403), the rate limits per
    client address and per SDK key (429 + ``Retry-After``, before the body is read; a body then
    costs one more token per :data:`BODY_BYTES_PER_TOKEN`, so large bodies slow a client down
    sooner), validation (400), and, when it is spooled, the spool's budget (503 + ``Retry-After``:
    the edge refuses new events rather than ever deleting acknowledged ones)."""

    def __init__(self, edge: EdgeLike) -> None:
        settings = edge.settings
        self.edge = edge
        self.budget = SpoolBudget(settings.intake_max_spool_bytes, settings.intake_min_free_bytes)
        self.spool = Spool(
            spool_dir(settings.data_dir),
            rotate_bytes(settings.intake_max_spool_bytes, settings.workers),
            self.budget,
        )
        self.stream = RedisQueue(settings.redis_url) if settings.redis_url else None
        burst = INTAKE_BURST_SECONDS
        self.per_key = RateLimiter(settings.intake_rate_per_key, settings.intake_rate_per_key * burst, name="SDK key")
        self.per_address = RateLimiter(
            settings.intake_rate_per_address, settings.intake_rate_per_address * burst, name="client address"
        )
        self.client_address = ClientAddress(settings.trusted_proxies)
        self.refused = dict.fromkeys(REFUSALS, 0)
        self.accepted = 0
        # Reason → (when it was last logged, refusals not logged since): one line per reason per
        # REFUSAL_LOG_INTERVAL, however hard intake is pushed.
        self._logged: dict[str, tuple[float, int]] = {}
        edge.metric_sources.append(self.metric_lines)

    def refuse(self, reason: str, detail: str, level: int = logging.WARNING) -> None:
        """Count a refused request and log it, at most once per reason per interval."""
        self.refused[reason] += 1
        now = time.monotonic()
        last, quiet = self._logged.get(reason, (-math.inf, 0))
        if now - last < REFUSAL_LOG_INTERVAL:
            self._logged[reason] = (last, quiet + 1)
            return
        self._logged[reason] = (now, 0)
        more = f" ({quiet} more refused since the last report)" if quiet else ""
        log.log(level, "refusing SDK events (%s): %s%s", reason, detail, more)

    def metric_lines(self) -> list[str]:
        try:
            spooled, _ = self.budget.usage(self.spool.directory)
        except OSError:
            spooled = 0
        lines = ["# TYPE flagedge_intake_refused_total counter"]
        lines += [f'flagedge_intake_refused_total{{reason="{r}"}} {n}' for r, n in self.refused.items()]
        lines += [
            "# TYPE flagedge_intake_events_total counter",
            f"flagedge_intake_events_total {self.accepted}",
            "# TYPE flagedge_intake_spool_bytes gauge",
            f"flagedge_intake_spool_bytes {spooled}",
        ]
        return lines

    def limit(self, request: Request, key: SdkKey) -> tuple[tuple[RateLimiter, str], ...]:
        """Take a token per client address and per SDK key (429 if either is out); the buckets."""
        address = self.client_address(
            request.client.host if request.client else None, request.headers.get("x-forwarded-for")
        )
        limits = ((self.per_address, address), (self.per_key, key.key_hash))
        try:
            check_all(*limits)
        except RateLimited as e:
            by_address = e.limiter is self.per_address
            reason = RATE_LIMITED_ADDRESS if by_address else RATE_LIMITED_KEY
            self.refuse(reason, f"client {address}" if by_address else f"an SDK key of environment {key.environment}")
            raise
        return limits

    async def spool_records(self, records: list[tuple[str, bytes]]) -> None:
        try:
            await asyncio.to_thread(self.spool.append, [data + b"\n" for _, data in records])
        except SpoolRefused as e:
            self.refuse(e.reason, str(e))
            retry = RETRY_AFTER[e.reason]
            raise EdgeError(
                503, f"events are not taken now ({e.reason}); retry later", headers={"Retry-After": retry}
            ) from None
        except OSError as e:
            self.refuse(SPOOL_ERROR, f"could not spool {len(records)} events: {e}", logging.ERROR)
            raise EdgeError(503, "events could not be queued; retry later", headers={"Retry-After": "5"}) from None

    async def enqueue(self, records: list[tuple[str, bytes]]) -> None:
        """Make ``(record id, record JSON)`` durable: on the Redis stream, else in the spool (503 +
        ``Retry-After`` when neither takes them). Every public write of the edge goes through here."""
        if self.stream is None or not await self.stream.queue(records):
            await self.spool_records(records)
        self.accepted += len(records)

    async def admit(self, request: Request, key: SdkKey, parse: Callable[[Any], list[Event]], *, bulk: bool) -> int:
        """Take the events of one request for ``key``'s environment: rate limits, body, ``parse``
        (validation: :class:`Invalid` is a 400 naming the field), then the Redis stream or the
        spool. The number of events taken. Every SDK's event route ends here (the Reflag ones
        below, DevCycle's in ``server.devcycle.events``). ``bulk``: an ``Idempotency-Key`` names
        the request, so each event's de-duplication id gets its index."""
        edge = self.edge
        limits = self.limit(request, key)
        header_key = _idempotency_key(request)
        body, size = await read_body(request, edge.settings.max_body_bytes, edge.settings.body_timeout)
        for limiter, bucket in limits:
            limiter.charge(bucket, size // BODY_BYTES_PER_TOKEN)
        try:
            events = parse(body)
        except Invalid as e:
            raise EdgeError(400, f"{e.field} {e.message}", field=e.field) from None
        env = edge.state.view.environments.get(key.environment)
        received = now_iso()
        records: list[tuple[str, bytes]] = []
        for i, event in enumerate(events):
            dedup = event.dedup
            if dedup is None and header_key is not None:
                dedup = f"{header_key}:{i}" if bulk else header_key
            record_id = event_id(key.environment, dedup)
            record = intake.record(
                record_id=record_id,
                kind=event.type,
                environment=key.environment,
                project=env.project if env is not None else None,
                key_kind=key.kind,
                received_at=received,
                dedup_id=dedup,
                event=event.fields,
            )
            records.append((record_id, record))
        await self.enqueue(records)
        return len(records)

    def endpoint(self, kind: str | None) -> Endpoint:
        """The handler of one Reflag event kind (``None``: ``/bulk``, a list of events of any kind)."""

        def parse(body: Any) -> list[Event]:
            return validate_bulk(body) if kind is None else [validate(kind, body)]

        async def receive(request: Request) -> Response:
            key = sdk_key(self.edge.state.view, request)
            await self.admit(request, key, parse, bulk=kind is None)
            return _accepted(request)

        return receive
