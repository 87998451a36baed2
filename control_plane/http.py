"""Routing, request parsing and responses shared by every admin route.

A route is declared once with :meth:`Router.route`; the declaration drives the Starlette route,
body/query validation (pydantic), authentication, the error envelope and the OpenAPI document.
Every write goes through :meth:`Ctx.commit`: one SQLite transaction that also checks the
idempotency key, appends the audit entries and validates the snapshots of touched projects.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from contract.client_address import ClientAddress
from control_plane import webhook_events
from control_plane.authz import KeyAccess, Principal, admit, authenticate
from control_plane.dialect import STORAGE_ERRORS, Connection, value_too_large
from control_plane.errors import ApiError, Shape
from control_plane.errors import body as error_body
from control_plane.group_commit import GroupCommits
from control_plane.key_vault import KeyVault
from control_plane.oidc import OidcClient
from control_plane.published_releases import PublishedReleases
from control_plane.ratelimit import KeyLimits, LoginGuard
from control_plane.security import Tokens
from control_plane.settings import Settings
from control_plane.store import StorageFailure, Store, now_iso

log = logging.getLogger("control_plane")

T = TypeVar("T", bound=BaseModel)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The longest Idempotency-Key kept (Stripe's limit): it is part of a primary key, and PostgreSQL
# refuses an index entry over about 2.7 kB.
MAX_IDEMPOTENCY_KEY = 255


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


@dataclass
class Services:
    settings: Settings
    store: Store
    tokens: Tokens
    # Called with the ids of projects whose snapshot data changed, and of those only some of
    # whose features changed those features (Write.features), inside the write transaction;
    # raises ApiError when a snapshot does not compile (the write then rolls back). Returns the
    # validated environment documents by environment id.
    validate_projects: Callable[[Connection, set[str], dict[str, set[str]]], dict[str, Any]]
    # Called after commit, still under the store lock, with the same ids and those documents:
    # publishes the snapshots (or, on a publishing replica, returns the Future of the version that
    # will hold the change: the route answers once it resolves).
    publish_projects: Callable[[set[str], dict[str, Any]], object]
    login_guard: LoginGuard
    client_address: ClientAddress
    # Rate limits of the key-authenticated API routes (RouteSpec.keys).
    key_limits: KeyLimits
    # Batched durable inserts for high-volume intake (telemetry).
    group_commits: GroupCommits
    # Airborne's public release route, from the published snapshot.
    releases: PublishedReleases
    # OIDC login against the configured issuer (None: not configured).
    oidc: OidcClient | None
    # Values kept encrypted at rest and read back (SDK keys, integration tokens).
    vault: KeyVault
    # Several replicas (PostgreSQL): called inside the write transaction, after the validation,
    # with the touched project ids and the features changed (as validate_projects), to queue them
    # for the replica that publishes (control_plane/replication.py).
    record_change: Callable[[Connection, set[str], dict[str, set[str]]], None] | None = None
    # Called after a commit whose write validated projects: the builds it validated are what the
    # database holds now (control_plane.incremental keeps them for the next write).
    builds_committed: Callable[[], None] = lambda: None


def request_id(request: Request) -> str:
    rid = request.scope.get("state", {}).get("request_id")
    if isinstance(rid, str):
        return rid
    sent = request.headers.get("x-request-id", "")
    return sent if _REQUEST_ID.match(sent) else secrets.token_hex(12)


def error_response(request: Request, err: ApiError, shape: Shape = "envelope") -> JSON:
    rid = request_id(request)
    return JSON(error_body(err, rid, shape), status_code=err.status, headers={**err.headers, "X-Request-Id": rid})


# Seconds a client should wait before retrying a write the disk could not take.
STORAGE_RETRY_AFTER = "5"


def storage_unavailable(failure: StorageFailure) -> ApiError:
    """503 for a write (or read) the disk could not take: nothing was saved, retry later."""
    return ApiError(
        503,
        f"the change was not saved: {failure.reason}; retry later",
        code="storage_unavailable",
        details=[{"field": "storage", "code": failure.code, "message": failure.reason}],
        headers={"Retry-After": STORAGE_RETRY_AFTER},
    )


def _pydantic_details(e: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for item in e.errors(include_url=False):
        loc = ".".join(str(p) for p in item["loc"])
        out.append(
            {"field": f"{prefix}{loc}" if loc else prefix.rstrip("."), "code": item["type"], "message": item["msg"]}
        )
    return out


@dataclass
class Write:
    """What a change function receives inside :meth:`Ctx.commit`."""

    db: Connection
    principal: Principal
    change_reason: str | None
    touched: set[str] = field(default_factory=set)
    # Touched projects of which only these features changed (and nothing else they serve); a
    # project touched as a whole is not here.
    features: dict[str, set[str]] = field(default_factory=dict)
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    # Set while an approved change request is applied (its id): the approval gate lets the change
    # through the same write code a direct request runs (routes/devcycle/approval.py).
    change_request: str | None = None

    def audit(
        self,
        action: str,
        target: str,
        *,
        organisation_id: str | None = None,
        project_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append an audit entry in this write's transaction: later reads in the same change
        (a response's ``latestUpdate``) see it, and a rollback takes it away with the change."""
        entry = (
            now_iso(),
            self.principal.id,
            organisation_id,
            project_id,
            action,
            target,
            self.change_reason,
            orjson.dumps(details or {}).decode(),
        )
        self.db.execute(
            "INSERT INTO audit_log (at, actor, organisation_id, project_id, action, target,"
            " change_reason, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            entry,
        )
        self.entries.append(entry)

    def touch(self, project_id: str, *, features: Iterable[str] | None = None) -> None:
        """Mark a project whose snapshots must be rebuilt after this change. ``features``: only
        these features of it changed (their rows, variations, variables and configurations), so
        only they are rebuilt (``control_plane.incremental``); else the whole project is."""
        if features is None:
            self.features.pop(project_id, None)
        elif project_id not in self.touched or project_id in self.features:
            self.features.setdefault(project_id, set()).update(features)
        self.touched.add(project_id)


@dataclass
class Ctx:
    request: Request
    services: Services
    body: Any = None
    query: Any = None
    _principal: Principal | None = None
    # The publishes this request's commits wait for (a publishing replica publishes in batches).
    published: list[Future[Any]] = field(default_factory=list)

    @property
    def principal(self) -> Principal:
        if self._principal is None:
            self._principal = authenticate(
                self.services.store,
                self.services.tokens,
                self.request.headers.get("authorization"),
                self.request.headers.get("x-api-key"),
            )
        return self._principal

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def client_address(self) -> str:
        """The client's address, through the trusted proxies (``--trusted-proxies``)."""
        peer = self.request.client.host if self.request.client else None
        return self.services.client_address(peer, self.request.headers.get("x-forwarded-for")) or "unknown"

    def header(self, name: str) -> str | None:
        """A request header as text: ASGI servers decode header bytes as latin-1, clients send
        UTF-8 (an organisation or application name may be any Unicode text), so it is read
        back as UTF-8 when it is that."""
        value = self.request.headers.get(name)
        if value is None or value.isascii():
            return value
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return value

    def commit(self, change: Callable[[Write], Any], *, status: int = 200, idempotent: bool = True) -> JSON:
        """Run ``change`` in one transaction with audit, idempotency and snapshot validation."""
        principal = self.principal
        idem_key = self.request.headers.get("idempotency-key") or getattr(self.body, "client_dedup_id", None)
        if idem_key is not None and len(idem_key) > MAX_IDEMPOTENCY_KEY:
            raise ApiError(
                400,
                "request failed validation",
                details=[
                    {
                        "field": "idempotency-key",
                        "code": "string_too_long",
                        "message": f"String should have at most {MAX_IDEMPOTENCY_KEY} characters",
                    }
                ],
            )
        route = f"{self.request.method} {self.request.url.path}"
        reason = getattr(self.body, "change_reason", None) or self.request.headers.get("x-change-reason")
        store = self.services.store
        documents: dict[str, Any] = {}
        # One lock from BEGIN to the LMDB write: no other commit can slip in between, so the
        # documents validated inside the transaction are still the latest when published.
        with store.exclusive():
            with store.transaction() as db:
                if idempotent and idem_key:
                    row = db.execute(
                        "SELECT status, body FROM idempotency WHERE principal = ? AND idem_key = ? AND route = ?",
                        (principal.id, idem_key, route),
                    ).fetchone()
                    if row is not None:
                        replay = orjson.loads(row["body"])
                        if isinstance(replay, dict):
                            replay["replayed"] = True
                        return JSON(replay, status_code=row["status"])
                w = Write(db, principal, reason)
                result = change(w)
                if w.touched:
                    documents = self.services.validate_projects(db, w.touched, w.features)
                    if self.services.record_change is not None:
                        self.services.record_change(db, w.touched, w.features)
                # In the change's transaction: an acknowledged change is a webhook delivery owed.
                webhook_events.enqueue(db, principal.email, w.entries)
                if idempotent and idem_key:
                    stored = {**result, "replayed": False} if isinstance(result, dict) else result
                    db.execute(
                        "INSERT INTO idempotency (principal, idem_key, route, status, body, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (principal.id, idem_key, route, status, orjson.dumps(stored).decode(), now_iso()),
                    )
                    result = stored
            if w.touched:
                self.services.builds_committed()
                published = self.services.publish_projects(w.touched, documents)
                if isinstance(published, Future):
                    self.published.append(published)
        return JSON(result, status_code=status)


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    auth: bool
    status: int
    headers: tuple[str, ...]
    responses: tuple[int, ...]
    # The shape its errors are answered in (DESIGN.md section 5b).
    shape: Shape = "envelope"
    # Set for a route of a key-authenticated API (/api/v1): only those keys pass, rate-limited.
    keys: KeyAccess | None = None
    # A bound below the server's --max-body-bytes for this route's body.
    max_body: int | None = None
    # Those of ``headers`` the route refuses to run without (declared required in OpenAPI).
    required_headers: tuple[str, ...] = ()
    # The model of the success body (OpenAPI only; handlers return plain dicts).
    response: type[BaseModel] | None = None


class Router:
    """Routes of one resource; ``shape`` is the error shape of all of them (DESIGN.md section 5b);
    a header in ``required_headers`` is required by every route of the router that takes it."""

    def __init__(self, tag: str, shape: Shape = "envelope", required_headers: tuple[str, ...] = ()) -> None:
        self.tag = tag
        self.shape = shape
        self.required_headers = required_headers
        self.specs: list[RouteSpec] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        auth: bool = True,
        status: int = 200,
        headers: tuple[str, ...] = (),
        responses: tuple[int, ...] = (),
        shape: Shape | None = None,
        keys: KeyAccess | None = None,
        max_body: int | None = None,
        response: type[BaseModel] | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.specs.append(
                RouteSpec(
                    method,
                    path,
                    handler,
                    summary,
                    self.tag,
                    body,
                    query,
                    auth,
                    status,
                    headers,
                    responses,
                    shape or self.shape,
                    keys,
                    max_body,
                    tuple(h for h in headers if h in self.required_headers),
                    response,
                )
            )
            return handler

        return register


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The raw body, at most ``limit`` bytes (else 413), all of it within ``timeout`` seconds
    (else 408). A client that goes away mid-body is logged as one line, not as an error with a
    traceback: it is the client's doing and happens all the time (timeouts, closed tabs)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared[:19]) > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"request body larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout:g} seconds") from None
    except ClientDisconnect:
        log.info("client went away while sending the body of %s %s", request.method, request.url.path)
        raise ApiError(400, "the client went away while sending the body") from None
    return b"".join(chunks)


def parse_model(model: type[T], raw: Any, prefix: str = "") -> T:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ApiError(400, "request failed validation", details=_pydantic_details(e, prefix)) from None


def _nul_field(value: Any, path: str) -> str | None:
    """The first field of ``value`` (a key or a string, at any depth) holding a NUL character."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            inner = f"{path}.{k}" if path else str(k)
            if "\x00" in str(k):
                return inner
            if (found := _nul_field(v, inner)) is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if (found := _nul_field(v, f"{path}[{i}]")) is not None:
                return found
    return None


def refuse_nul(value: Any, prefix: str) -> None:
    """A 400 for text holding NUL (U+0000): PostgreSQL's text cannot store it, and no name, key
    or value of the API means it, so both stores refuse it alike, before any handler runs."""
    field = _nul_field(value, "")
    if field is not None:
        field = prefix + field if field else prefix.rstrip(".")
        raise ApiError(
            400,
            "request failed validation",
            details=[{"field": field, "code": "nul_character", "message": "text may not contain NUL (U+0000)"}],
        )


def endpoint(spec: RouteSpec, services: Services) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            ctx = Ctx(request, services)
            if spec.auth:
                admit(ctx.principal, spec.keys)
                if spec.keys is not None:
                    # Before the body is read: a refused client costs no parsing.
                    services.key_limits.check(ctx.principal.api_key_id or "", ctx.client_address())
            refuse_nul(dict(request.path_params), "path.")
            for name, value in request.query_params.multi_items():
                refuse_nul({name: value}, "query.")
            if spec.query is not None:
                ctx.query = parse_model(spec.query, dict(request.query_params), "query.")
            if spec.body is not None:
                limit = services.settings.max_body_bytes
                if spec.max_body is not None:
                    limit = min(limit, spec.max_body)
                raw = await read_body(request, limit, services.settings.body_timeout)
                try:
                    data = orjson.loads(raw) if raw.strip() else {}
                except orjson.JSONDecodeError as e:
                    # The parser's reason says what is wrong ("depth limit exceeded" for deep nesting).
                    raise ApiError(
                        400,
                        "request body is not valid JSON",
                        details=[{"field": "body", "code": "invalid_json", "message": str(e)}],
                    ) from None
                if b"\\u0000" in raw:  # JSON can only carry a NUL escaped
                    refuse_nul(data, "body.")
                ctx.body = parse_model(spec.body, data)
            result = await spec.handler(ctx)
            for published in ctx.published:
                await asyncio.wrap_future(published)  # raises the publish's ApiError (503)
            if isinstance(result, Response):
                return result
            return JSON(result, status_code=spec.status)
        except ApiError as err:
            return error_response(request, err, spec.shape)
        except STORAGE_ERRORS as e:
            if value_too_large(e):
                # A value over what the store can index (PostgreSQL: ~2.7 kB): the input's fault.
                log.warning("%s %s: a value is too large to store: %s", spec.method, spec.path, e)
                return error_response(
                    request, ApiError(400, "a value of the request is too large to store"), spec.shape
                )
            # A full or failing disk is the store's state, not this request's bug: 503, not 500.
            failure = services.store.note_failure(e)
            if failure is None:
                log.exception("unhandled error in %s %s", spec.method, spec.path)
                return error_response(request, ApiError(500, "internal error"), spec.shape)
            return error_response(request, storage_unavailable(failure), spec.shape)
        except Exception:
            log.exception("unhandled error in %s %s", spec.method, spec.path)
            return error_response(request, ApiError(500, "internal error"), spec.shape)

    return run


def starlette_routes(routers: list[Router], services: Services) -> list[Route]:
    return [
        Route(spec.path, endpoint(spec, services), methods=[spec.method], name=spec.handler.__name__)
        for router in routers
        for spec in router.specs
    ]
