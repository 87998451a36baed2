"""The control-plane ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.client_address import ClientAddress
from contract.lifecycle import die_with_master
from contract.store_recovery import recover_damaged_store
from control_plane import build_changes, incremental
from control_plane.board_publish import board_publisher
from control_plane.dashboard.serve import dashboard_routes
from control_plane.errors import ApiError, Shape
from control_plane.events_consumer import start_consumer_thread
from control_plane.group_commit import GroupCommits
from control_plane.http import JSON, Router, Services, error_response, request_id, starlette_routes
from control_plane.key_vault import KeyVault
from control_plane.oidc import OidcClient
from control_plane.openapi import document
from control_plane.published_releases import PublishedReleases
from control_plane.publisher import Publisher
from control_plane.ratelimit import KeyLimits, LoginGuard
from control_plane.redis_publish import RedisRetention
from control_plane.replication import Replication
from control_plane.routes import airborne, api_keys, devcycle, live, oauth, organisations, releaseo, sytwm, users
from control_plane.security import Tokens
from control_plane.settings import KEY_ENCRYPTION_SECRET_FILE, Settings, from_env, load_secret
from control_plane.shared_limits import SharedKeyLimits, SharedLoginGuard
from control_plane.store import Store
from control_plane.warm_builds import Warmer
from control_plane.webhook_delivery import Deliverer, delivery_policy

log = logging.getLogger("control_plane")
# How often the control plane checks whether Redis announced a version above its own.
CATCH_UP_INTERVAL = 2.0
VERSION = "0.1.0"
ROUTERS: list[Router] = [users.router, oauth.router, organisations.router, api_keys.router]
ROUTERS += releaseo.routers + airborne.routers + devcycle.routers + sytwm.routers + [live.router]


class RequestIdMiddleware:
    """Echo a well-formed client ``X-Request-Id`` or mint one; every response carries it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(Request(scope))
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(settings: Settings) -> Starlette:
    store = Store(settings.database)
    # A damaged LMDB file is moved aside and rebuilt by the republish below (it is derived data).
    floor = recover_damaged_store(settings.data_dir)
    publisher = Publisher(
        settings.data_dir,
        store,
        settings.redis_url,
        settings.lmdb_map_size,
        floor=floor,
        fenced=store.postgresql,  # replicas: Redis takes only the current term's writes
        redis_retention=RedisRetention(
            versions=settings.redis_retention_versions,
            seconds=settings.redis_retention_seconds,
            bytes=settings.redis_retention_bytes,
        ),
    )
    # PostgreSQL: any number of replicas; the one that holds the publish lock publishes what any
    # of them committed, in commit order (it republishes everything when it takes over).
    replication = Replication(store, publisher) if store.postgresql else None
    if replication is None:
        # Repairs a publish lost between a SQLite commit and the LMDB write (crash), and gives a
        # new install its first version, so edges become ready. If LMDB refuses it (map full), the
        # admin API still starts and /ready reports the failure (the publisher logged it).
        with contextlib.suppress(ApiError):
            publisher.republish_all()
    else:
        replication.start()  # tries to become the publisher once before serving
    # Several replicas share their limits in PostgreSQL; one SQLite process keeps them in memory.
    limits = (
        settings.api_v1_rate_per_key,
        settings.api_v1_burst_per_key,
        settings.api_v1_rate_per_address,
        settings.api_v1_burst_per_address,
    )
    if store.postgresql:
        login_guard: LoginGuard = SharedLoginGuard(store, settings.login_attempts_per_minute)
        key_limits: KeyLimits = SharedKeyLimits(store, *limits)
    else:
        login_guard, key_limits = LoginGuard(settings.login_attempts_per_minute), KeyLimits(*limits)
    # What a write builds is patched onto the build kept from the last one when the project's
    # build generation says no write came between (another replica's, on PostgreSQL).
    builder = incremental.Builder()
    warmer = Warmer(store, builder)
    # What each write changed, kept a few minutes for the replicas that did not see it.
    changes_pruner = build_changes.pruner(store)

    def builds_committed() -> None:
        builder.committed()
        changes_pruner.when_due(time.time())

    services = Services(
        settings=settings,
        store=store,
        tokens=Tokens(settings.jwt_secret, settings.access_token_ttl, settings.refresh_token_ttl),
        validate_projects=builder.validate_projects,
        publish_projects=replication.publish if replication else publisher.publish_projects,
        login_guard=login_guard,
        client_address=ClientAddress(settings.trusted_proxies),
        key_limits=key_limits,
        group_commits=GroupCommits(store),
        releases=PublishedReleases(
            replication.read_release if replication else functools.partial(publisher.writer.get, "releases")
        ),
        oidc=OidcClient(settings.oidc) if settings.oidc is not None else None,
        vault=KeyVault(load_secret(settings.data_dir, KEY_ENCRYPTION_SECRET_FILE, settings.key_encryption_secret)),
        record_change=replication.record if replication else None,
        builds_committed=builds_committed,
    )
    openapi = document(ROUTERS, "flagedge control plane", VERSION)

    async def openapi_json(request: Request) -> Response:
        return JSON(openapi)

    async def health(request: Request) -> Response:
        return JSON({"status": "ok"})

    async def ready(request: Request) -> Response:
        """503 while the latest snapshot publish failed (changes are saved but edges do not get
        them) or while the disk refuses writes (``storage``, present only then; each call probes
        the disk, so readiness comes back by itself when space returns)."""
        publish = await asyncio.to_thread(replication.status) if replication else publisher.status()
        failure = await asyncio.to_thread(store.probe)
        body: dict[str, Any] = {"ready": publish["ok"] and failure is None, "publish": publish}
        if failure is not None:
            body["storage"] = {
                "ok": False,
                "code": failure.code,
                "error": failure.reason,
                "since": failure.since,
                "failures": failure.failures,
            }
        return JSON(body, status_code=200 if body["ready"] else 503)

    # A path under an Airborne route that matched no route (a 404/405 from routing) answers in
    # Airborne's shape too: its clients parse that shape whatever went wrong.
    airborne_prefixes = tuple(
        {spec.path.split("{")[0] for router in ROUTERS for spec in router.specs if spec.shape == "airborne"}
    )

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {404: "no such route", 405: "method not allowed"}.get(status, "request failed")
        shape: Shape = "airborne" if request.url.path.startswith(airborne_prefixes) else "envelope"
        return error_response(request, ApiError(status, message), shape)

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {HTTPException: http_error}
    routes: list[BaseRoute] = [Route("/openapi.json", openapi_json), Route("/health", health), Route("/ready", ready)]
    routes += starlette_routes(ROUTERS, services)
    routes += dashboard_routes()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # SDK events that edges spooled into this data dir flow into the store (at-least-once,
        # de-duplicated by event id).
        # Releaseo's public writes among them that change a project's public board republish it.
        consumer = start_consumer_thread(
            settings.data_dir,
            store,
            redis_url=settings.redis_url,
            publish=replication.enqueue if replication else board_publisher(store, builder, publisher),
        )
        # Webhooks are sent by the process that publishes (outbox rows are claimed with a lease,
        # so replicas sharing a database never send one twice at the same time).
        deliverer = Deliverer(store, delivery_policy(settings), services.vault)
        delivering = asyncio.create_task(deliverer.run())
        catch_up = replication.catch_up if replication else publisher.catch_up
        catching_up = asyncio.create_task(_catch_up(catch_up)) if settings.redis_url else None
        # The first write to a project patches a build made after the start, not a whole one.
        warmer.start()
        yield
        await asyncio.to_thread(warmer.stop)
        delivering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivering
        await deliverer.close()
        if catching_up is not None:
            catching_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await catching_up
        consumer.stop()
        await services.group_commits.close()
        if replication is not None:
            replication.stop()
        publisher.close()
        store.close()

    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.services = services
    app.state.publisher = publisher
    app.state.replication = replication
    app.state.warmer = warmer
    app.state.build_changes_pruner = changes_pruner
    app.add_middleware(RequestIdMiddleware)
    return app


async def _catch_up(catch_up: Callable[[], int | None], interval: float = CATCH_UP_INTERVAL) -> None:
    """Go above a Redis high-water mark learned after start without waiting for a write."""
    while True:
        await asyncio.sleep(interval)
        try:
            catch_up()  # on the event loop, like every publish of this single worker
        except ApiError:
            pass  # a failed publish is logged and reported by /ready; tried again next round
        except Exception:
            log.exception("catching up with the version other hosts hold failed; trying again")


def app_from_env() -> Starlette:
    """Factory for granian workers: settings come from the ``FLAGEDGE_`` environment."""
    die_with_master()
    return create_app(from_env())
