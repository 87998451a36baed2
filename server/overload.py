"""Load shedding for one edge worker: answer 503 at once instead of queueing without bound.

A worker runs one asyncio event loop. Under more load than it can serve, requests wait in the
loop's ready queue, and every one of them waits for all those ahead: with 4,000 connections and
0.17 ms per W2 evaluation that is ~700 ms for each request, growing with every client added.
The queue is not visible to the application, but its effect is: a callback due at time T runs
late by as long as the backlog in front of it takes. :class:`LoadShedder` keeps a heartbeat task
that wakes every 10 ms; a request that starts while the heartbeat has not run for ``max_delay``
(``--shed-queue-delay``, default 0.1 s) is part of a backlog at least that long, and is answered
right away with ``503`` (``Retry-After: 1`` and the error envelope) instead of being evaluated,
provided the backlog is real: the heartbeat was late last time too (it lasts), or the loop has
been working through requests for that long since it last ran (a burst, such as thousands of
SDKs reconnecting at once). A one-off stall (a GC pause, the process descheduled for a
moment) is not shed. A shed answer costs granian's per-request overhead only (~4x cheaper than
a W2 evaluation), so the backlog drains, the heartbeat runs, and the requests after it are
served again: the wait a request sees stays near ``max_delay`` instead of growing with the
number of clients, and the edge answers everything again as soon as the load drops. The check
is one clock read per request.

Which paths are never shed is the route table's word (``server.routes.NEVER_SHED``, given as
``exempt``): ``/health``, ``/ready`` and ``/metrics`` (an orchestrator must not restart or take
out of rotation a worker that is merely busy) and the SSE subscriptions (``/features/stream``,
``/ofrep/v1/stream``: each is one long-lived connection, bounded by ``--max-concurrency``;
refusing them in a reconnect storm only makes every SDK come back again). The 503 is answered in
the error shape of the route the path belongs to (``shape_for``; OFREP's body on OFREP paths).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import ENVELOPE, EdgeError, Shape, request_id, send_error

log = logging.getLogger("server.overload")

RETRY_AFTER = "1"
# Requests started since the last heartbeat that make a backlog a burst rather than a stall.
BURST = 16


class Stats:
    """This worker's totals, for ``/metrics``."""

    shed = 0


stats = Stats()


def _envelope(path: str) -> Shape:
    return ENVELOPE


class LoadShedder:
    """ASGI middleware shedding requests that queued longer than ``max_delay`` seconds."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_delay: float,
        exempt: Iterable[str] = (),
        shape_for: Callable[[str], Shape] = _envelope,
    ) -> None:
        self.app = app
        self.shape_for = shape_for
        self.max_delay = max_delay
        # The heartbeat must beat well within the allowed delay to measure it.
        self.interval = min(0.01, max_delay / 4)
        self.exempt = frozenset(exempt)
        # When the heartbeat last ran; +inf until it first runs (no shedding before that).
        self._beat = math.inf
        # How late the heartbeat ran last time, beyond its interval.
        self.last_lag = 0.0
        # Requests started since the heartbeat last ran, and when the first of them started.
        self._count = 0
        self._first = 0.0
        self._shedding_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            self._count = 0
            await asyncio.sleep(self.interval)
            self.last_lag = max(0.0, time.monotonic() - self._beat - self.interval)
            if self._shedding_since is not None and self.last_lag <= self.max_delay / 2:
                log.warning(
                    "worker no longer overloaded after %.1f s; %d request(s) shed so far",
                    time.monotonic() - self._shedding_since,
                    stats.shed,
                )
                self._shedding_since = None

    def overloaded(self, now: float) -> bool:
        """The heartbeat has not run for ``max_delay`` (a request starting now waited behind a
        backlog at least that long), and either it was late by half of that last time too (the
        backlog lasts), or the loop has been working through requests for as long since (a
        burst, e.g. thousands of clients reconnecting at once).

        One-off stalls are not shed: after a GC pause or a moment descheduled, the heartbeat is
        late, but the few requests queued meanwhile are served and the heartbeat runs right after.
        """
        if now - self._beat <= self.max_delay:
            return False
        if self.last_lag > self.max_delay / 2:
            return True
        return self._count >= BURST and now - self._first > self.max_delay

    def admit(self) -> bool:
        """Count a request starting now: False when it is to be shed (:meth:`refuse`). The hot
        path (``server.hot_path``) asks this directly, before the middleware stack."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        now = time.monotonic()
        if self._count == 0:
            self._first = now
        self._count += 1
        return not self.overloaded(now)

    async def refuse(self, scope: Scope, send: Send) -> None:
        """Answer a shed request: 503 + Retry-After in the error shape of its path."""
        stats.shed += 1
        if self._shedding_since is None:
            self._shedding_since = time.monotonic()
            log.warning("worker overloaded (requests queue for over %.0f ms): answering 503", self.max_delay * 1000)
        err = EdgeError(
            503,
            "the edge is overloaded; retry after the delay in Retry-After",
            headers={"Retry-After": RETRY_AFTER, "Cache-Control": "no-store"},
        )
        await send_error(send, err, request_id(Request(scope)), self.shape_for(scope["path"]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt or self.admit():
            await self.app(scope, receive, send)
            return
        await self.refuse(scope, send)
