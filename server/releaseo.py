"""Releaseo's public SDK routes on the edge: the feature-request board, the roadmap, identify and
product events, authorised by the project key (``?key=``, ``?projectKey=`` or ``x-project-key``;
``POST /e`` by ``?key=<publishKey>``, the same public key).

Reads are answered from the worker's snapshot (:class:`server.board.Board`), with an ``ETag``
and ``Cache-Control: no-cache`` (a client revalidates every time and gets 304 while nothing
changed), so they keep working while the control plane is down.

Writes are validated here, made durable in the intake (``EventIntake.enqueue``: the Redis
stream or the local spool) and answered ``202``; the control plane applies them
(``control_plane/releaseo_intake.py``) and republishes the board. Per route:

* ``POST /sdk/feature-requests`` and ``POST .../comments``: the id is minted here (so the
  client has it at once, while the control plane may be down); with an ``Idempotency-Key``
  header or ``client_dedup_id`` the id and the intake record's id derive from it, so a retry
  answers the same id and is applied once. A submission stays hidden (pending) until reviewed.
* ``POST .../vote`` and ``POST /sdk/roadmap/{id}/follow``: a forwarded *state* (``voted`` /
  ``following``, true by default, false takes it back), not a toggle, so any number of retries
  leave one vote per user and request.
* ``POST /sdk/identify`` and ``POST /e``: forwarded; identify merges the user's properties.

The target of a comment, vote or follow must be on the public board this worker serves (404
otherwise: pending, rejected, internal or targeted-away items cannot be written to). Limits: the
intake's per-address bucket, then per project key and per end user (429 + ``Retry-After``);
bodies are bounded; errors are the envelope.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from contract import intake
from server.auth import unknown
from server.board import DEFAULT_LIMIT, Board, Pairs
from server.errors import EdgeError, request_id
from server.events import (
    BODY_BYTES_PER_TOKEN,
    INTAKE_BURST_SECONDS,
    MAX_DEDUP_CHARS,
    EventIntake,
    now_iso,
    read_body,
)
from server.ratelimit import RateLimiter, check_all
from server.service import Edge, cached_json

Endpoint = Callable[[Request], Awaitable[Response]]

MAX_BODY_BYTES = 64 * 1024
MAX_USER_ID = 256
MAX_TITLE = 200
MAX_TEXT = 10_000
MAX_NAME = 100
MAX_PROPERTIES_BYTES = 16 * 1024
MAX_PROPERTIES = 200
MAX_EVENTS = 100
MAX_PAGE = 100
# A person clicks a vote a few times a second at most; bursts cover a page of widgets loading.
USER_BURST = 10.0
SORTS = ("top", "new")


# ---------------------------------------------------------------------------------------------
# Validation of the write bodies.


def _fail(field: str, message: str) -> EdgeError:
    return EdgeError(400, f"{field} {message}", field=field)


def _obj(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _fail("body", "must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, limit: int, *, required: bool, field: str | None = None) -> str | None:
    value = body.get(name)
    field = field or name
    if value is None:
        if required:
            raise _fail(field, "is required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _fail(field, f"must be a non-blank string of at most {limit} characters")
    return value


def _user_id(body: dict[str, Any], prefix: str = "") -> str:
    value = body.get("userId")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_USER_ID or not value.isprintable():
        raise _fail(prefix + "userId", f"is required: 1 to {MAX_USER_ID} printable characters")
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, True)
    if not isinstance(value, bool):
        raise _fail(name, "must be true or false")
    return value


def _properties(body: dict[str, Any], name: str, prefix: str = "") -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    field = prefix + name
    if not isinstance(value, dict) or len(value) > MAX_PROPERTIES:
        raise _fail(field, f"must be an object of at most {MAX_PROPERTIES} keys")
    try:
        size = len(orjson.dumps(value))
    except TypeError:
        raise _fail(field, "is nested too deeply") from None
    if size > MAX_PROPERTIES_BYTES:
        raise _fail(field, f"must serialize to at most {MAX_PROPERTIES_BYTES} bytes")
    return value


def _timestamp(body: dict[str, Any], prefix: str = "") -> str | None:
    value = _text(body, "timestamp", 64, required=False, field=prefix + "timestamp")
    if value is not None:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise _fail(prefix + "timestamp", "must be an ISO 8601 date-time") from None
    return value


def _dedup(request: Request, body: dict[str, Any]) -> str | None:
    """The client's idempotency key: the ``Idempotency-Key`` header or ``client_dedup_id``."""
    for field, value in (
        ("Idempotency-Key", request.headers.get("idempotency-key")),
        ("client_dedup_id", body.get("client_dedup_id")),
    ):
        if value is None:
            continue
        if not isinstance(value, str) or not 0 < len(value) <= MAX_DEDUP_CHARS or not value.isprintable():
            raise _fail(field, f"must be 1 to {MAX_DEDUP_CHARS} printable characters")
        return value
    return None


def minted_id(scope: str, kind: str, dedup: str | None) -> str:
    """The id of a new submission or comment: derived from the client's idempotency key (a retry
    gets the same id), else random."""
    if dedup is None:
        return uuid.uuid4().hex[:24]
    return hashlib.sha256(f"{scope}\n{kind}\n{dedup}".encode()).hexdigest()[:24]


def _page(request: Request) -> tuple[int, int]:
    """``limit`` (1..100) and the offset in ``cursor`` (an opaque string this API returned)."""
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= MAX_PAGE:
        raise _fail("limit", f"must be an integer from 1 to {MAX_PAGE}")
    cursor = request.query_params.get("cursor")
    offset = 0
    if cursor is not None:
        if not (cursor.startswith("o") and cursor[1:].isascii() and cursor[1:].isdigit() and len(cursor) < 12):
            raise _fail("cursor", "is not one this API returned")
        offset = int(cursor[1:])
    return int(raw), offset


# ---------------------------------------------------------------------------------------------
# The routes.


@dataclass
class ReleaseoApi:
    """One worker's Releaseo routes, on the worker's service and its intake."""

    edge: Edge
    intake: EventIntake

    def __post_init__(self) -> None:
        settings = self.edge.settings
        self.per_key = RateLimiter(
            settings.releaseo_rate_per_key, settings.releaseo_rate_per_key * INTAKE_BURST_SECONDS, name="project key"
        )
        self.per_user = RateLimiter(
            settings.releaseo_rate_per_user,
            max(USER_BURST, settings.releaseo_rate_per_user * INTAKE_BURST_SECONDS),
            name="end user",
        )

    # --- the project key and the board --------------------------------------------------------

    def board(self, request: Request, *, query_names: tuple[str, ...] = ("key", "projectKey")) -> Board:
        key = next((v for n in query_names if (v := request.query_params.get(n))), None)
        key = key or request.headers.get("x-project-key")
        if not key:
            raise EdgeError(401, "a project key is required (?key= or x-project-key)", field="key")
        view = self.edge.state.view
        board = view.boards.get(key)
        if board is None:
            raise unknown(view, 403, "unknown project key")
        return board

    # --- reads --------------------------------------------------------------------------------

    def reader(self, request: Request) -> tuple[str | None, Pairs]:
        """The reader's ``userId`` and flattened ``context.*`` query parameters (``context.user.plan``),
        bounded as on the flag routes."""
        user = request.query_params.get("userId") or request.headers.get("x-user-id")
        if user is not None and (len(user) > MAX_USER_ID or not user.isprintable()):
            raise _fail("userId", f"must be 1 to {MAX_USER_ID} printable characters")
        return user or None, self.edge.context_pairs(request)

    async def categories(self, request: Request) -> Response:
        board = self.board(request)
        return cached_json(request, orjson.dumps({"items": board.categories, "version": board.version}))

    async def feature_requests(self, request: Request) -> Response:
        """``GET`` lists the approved requests, ``POST`` submits one."""
        if request.method == "POST":
            return await self.submit(request)
        board = self.board(request)
        limit, offset = _page(request)
        sort = request.query_params.get("sort", "top")
        if sort not in SORTS:
            raise _fail("sort", f"must be one of {list(SORTS)}")
        category, status = request.query_params.get("categoryId"), request.query_params.get("status")
        return cached_json(request, board.request_page(sort, category, status, limit, offset))

    def _public_request(self, board: Board, request: Request) -> dict[str, Any]:
        found = board.request_index.get(request.path_params["id"])
        if found is None:
            raise EdgeError(404, "no such feature request on this board")
        return found

    async def comments(self, request: Request) -> Response:
        board = self.board(request)
        if request.method == "POST":
            return await self.comment(board, request)
        item = self._public_request(board, request)
        items = board.comments.get(str(item["id"]), [])
        return cached_json(request, orjson.dumps({"items": items, "version": board.version}))

    async def roadmap_snapshot(self, request: Request) -> Response:
        board = self.board(request)
        user, pairs = self.reader(request)
        return cached_json(request, board.snapshot_body(board.enabled(user, pairs)))

    async def roadmap_item(self, request: Request) -> Response:
        board = self.board(request)
        user, pairs = self.reader(request)
        item = board.roadmap_item(request.path_params["id"], board.enabled(user, pairs))
        if item is None:
            raise EdgeError(404, "no such roadmap item")
        return cached_json(request, orjson.dumps({**item, "version": board.version}))

    # --- writes -------------------------------------------------------------------------------

    async def _body(self, request: Request, board: Board) -> tuple[Any, tuple[tuple[RateLimiter, str], ...]]:
        """Rate limits per address and project key (before the body is read), then the body."""
        address = request.client.host if request.client is not None else ""
        limits = ((self.intake.per_address, address), (self.per_key, board.key))
        check_all(*limits)
        limit = min(MAX_BODY_BYTES, self.edge.settings.max_body_bytes)
        body, size = await read_body(request, limit, self.edge.settings.body_timeout)
        for limiter, bucket in limits:
            limiter.charge(bucket, size // BODY_BYTES_PER_TOKEN)
        return body, limits

    def _per_user(self, board: Board, user_id: str) -> None:
        self.per_user.check(f"{board.project}\n{user_id}")

    def _record(
        self, board: Board, kind: str, event: dict[str, Any], dedup: str | None, received: str
    ) -> tuple[str, bytes]:
        """The intake record of one write; its id derives from the idempotency key when given."""
        scope = intake.releaseo_scope(board.project)
        record_id = intake.event_id(scope, None if dedup is None else f"{kind}\n{dedup}")
        record = intake.record(
            record_id=record_id,
            kind=kind,
            environment=scope,
            project=board.project,
            key_kind="project",
            received_at=received,
            dedup_id=dedup,
            event=event,
        )
        return record_id, record

    async def _queue(self, board: Board, kind: str, event: dict[str, Any], dedup: str | None) -> None:
        await self.intake.enqueue([self._record(board, kind, event, dedup, now_iso())])

    def _accepted(self, request: Request, body: dict[str, Any]) -> Response:
        return Response(
            orjson.dumps({"success": True, **body}),
            status_code=202,
            media_type="application/json",
            headers={"X-Request-Id": request_id(request)},
        )

    async def identify(self, request: Request) -> Response:
        board = self.board(request)
        raw, _ = await self._body(request, board)
        body = _obj(raw)
        user_id = _user_id(body)
        # Segment's SDKs call them traits; Reflag's attributes: any of the three names works.
        name = next((n for n in ("properties", "traits", "attributes") if body.get(n) is not None), "properties")
        event: dict[str, Any] = {"userId": user_id, "properties": _properties(body, name)}
        if (timestamp := _timestamp(body)) is not None:
            event["timestamp"] = timestamp
        dedup = _dedup(request, body)
        self._per_user(board, user_id)
        await self._queue(board, intake.RELEASEO_IDENTIFY, event, dedup)
        return self._accepted(request, {"userId": user_id})

    async def submit(self, request: Request) -> Response:
        board = self.board(request)
        raw, _ = await self._body(request, board)
        body = _obj(raw)
        user_id = _user_id(body)
        title = _text(body, "title", MAX_TITLE, required=True)
        description = _text(body, "description", MAX_TEXT, required=False) or ""
        category = body.get("categoryId")
        # Only a string can name a category (a list or object would not even hash).
        if category is not None and (not isinstance(category, str) or category not in board.category_ids):
            raise _fail("categoryId", "is not a category of this board")
        author = _text(body, "authorName", MAX_NAME, required=False)
        dedup = _dedup(request, body)
        self._per_user(board, user_id)
        new_id = minted_id(intake.releaseo_scope(board.project), "feature-request", dedup)
        event = {"id": new_id, "userId": user_id, "title": title, "description": description}
        event |= {k: v for k, v in (("categoryId", category), ("authorName", author)) if v is not None}
        await self._queue(board, intake.RELEASEO_SUBMIT, event, dedup)
        return self._accepted(request, {"id": new_id, "reviewStatus": "pending"})

    async def comment(self, board: Board, request: Request) -> Response:
        item = self._public_request(board, request)
        raw, _ = await self._body(request, board)
        body = _obj(raw)
        user_id = _user_id(body)
        text = _text(body, "body", MAX_TEXT, required=True)
        author = _text(body, "authorName", MAX_NAME, required=False)
        dedup = _dedup(request, body)
        self._per_user(board, user_id)
        new_id = minted_id(intake.releaseo_scope(board.project), f"comment\n{item['id']}", dedup)
        event = {"id": new_id, "requestId": item["id"], "userId": user_id, "body": text}
        if author is not None:
            event["authorName"] = author
        await self._queue(board, intake.RELEASEO_COMMENT, event, dedup)
        return self._accepted(request, {"id": new_id, "requestId": item["id"]})

    async def vote(self, request: Request) -> Response:
        board = self.board(request)
        item = self._public_request(board, request)
        raw, _ = await self._body(request, board)
        body = _obj(raw)
        user_id = _user_id(body)
        voted = _flag(body, "voted")
        dedup = _dedup(request, body)
        self._per_user(board, user_id)
        event = {"requestId": item["id"], "userId": user_id, "voted": voted}
        await self._queue(board, intake.RELEASEO_VOTE, event, dedup)
        return self._accepted(request, {"requestId": item["id"], "voted": voted})

    async def follow(self, request: Request) -> Response:
        board = self.board(request)
        raw, _ = await self._body(request, board)
        body = _obj(raw)
        user_id = _user_id(body)
        # The item must be one this user sees: a targeted item is checked with the same context
        # a roadmap read sends (``context``: {"user": {"plan": ...}} or flattened pairs).
        context = _properties(body, "context")
        item = board.roadmap_item(request.path_params["id"], board.enabled_for(user_id, context))
        if item is None:
            raise EdgeError(404, "no such roadmap item")
        following = _flag(body, "following")
        dedup = _dedup(request, body)
        self._per_user(board, user_id)
        event = {"itemId": item["id"], "userId": user_id, "following": following}
        await self._queue(board, intake.RELEASEO_FOLLOW, event, dedup)
        return self._accepted(request, {"itemId": item["id"], "following": following})

    async def product_events(self, request: Request) -> Response:
        """``POST /e?key=<publishKey>``: one event object or a list of at most 100."""
        board = self.board(request, query_names=("key", "publishKey"))
        raw, _ = await self._body(request, board)
        items = raw if isinstance(raw, list) else [raw]
        if not items or len(items) > MAX_EVENTS:
            raise _fail("body", f"must hold 1 to {MAX_EVENTS} events")
        events = []
        for i, item in enumerate(items):
            prefix = f"[{i}]." if isinstance(raw, list) else ""
            if not isinstance(item, dict):
                raise _fail(prefix.rstrip(".") or "body", "must be a JSON object")
            event: dict[str, Any] = {
                "userId": _user_id(item, prefix),
                "event": _text(item, "event", MAX_TITLE, required=True, field=prefix + "event"),
                "properties": _properties(item, "properties", prefix),
            }
            if (timestamp := _timestamp(item, prefix)) is not None:
                event["timestamp"] = timestamp
            events.append(event)
        dedup = _dedup(request, raw if isinstance(raw, dict) else {})
        for user in {e["userId"] for e in events}:
            self._per_user(board, user)
        received = now_iso()
        records = [
            self._record(board, intake.RELEASEO_EVENT, event, None if dedup is None else f"{dedup}:{i}", received)
            for i, event in enumerate(events)
        ]
        await self.intake.enqueue(records)
        return self._accepted(request, {"accepted": len(events)})
