"""Airborne's public release route on the edge: ``GET /release/{organisation}/{application}``.

The answer (dimension context, cohorts, the release chain, bucketing, body, ETag) is computed by
:mod:`contract.airborne_release`, which the control plane serves the same route with; this module
only looks the application up in the worker's view and maps a refusal to an :class:`EdgeError`
(answered in Airborne's shape, ``server.routes``). An application the view does not hold is 404,
or 503 while no snapshot is loaded (:func:`server.auth.unknown`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

import evaluator
from contract.airborne_names import release_key
from contract.airborne_release import Refused, ReleaseCache, answer
from server.auth import unknown
from server.errors import EdgeError, request_id
from server.state import EdgeState, View

Endpoint = Callable[[Request], Awaitable[Response]]


class EdgeLike(Protocol):
    state: EdgeState

    async def view_for(self, request: Request) -> View: ...


def release_endpoint(edge: EdgeLike) -> Endpoint:
    """``GET /release/{organisation}/{application}`` over this worker's compiled release cache."""
    cache = ReleaseCache(evaluator)

    async def serve(request: Request) -> Response:
        view = await edge.view_for(request)
        key = release_key(request.path_params["organisation"], request.path_params["application"])
        value = view.releases.get(key)
        if value is None:
            raise unknown(view, 404, f"no application {key}")
        try:
            out = answer(cache, key, value, request.headers, request.query_params.get("toss"), view.releases)
        except Refused as r:
            raise EdgeError(r.status, r.message, field=r.field, headers=r.headers) from None
        headers = {**out.headers, "X-Request-Id": request_id(request)}
        if out.status == 304:
            return Response(status_code=304, headers=headers)
        return Response(out.body, media_type="application/json", headers=headers)

    return serve
