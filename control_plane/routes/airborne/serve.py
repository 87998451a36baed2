"""``GET /release/{organisation}/{application}`` on the control plane's port: the public route
the edge serves, answered from this control plane's published snapshot
(:mod:`control_plane.published_releases`) with the same bytes, headers and errors."""

from __future__ import annotations

from starlette.responses import Response

from control_plane.http import Ctx, Router
from control_plane.routes.airborne.responses import ServedRelease

router = Router("airborne-serve", shape="airborne")


@router.route(
    "GET",
    "/release/{organisation}/{application}",
    summary="The release a device gets for its x-dimensions (public; same answer as the edge)",
    auth=False,
    headers=("x-dimensions", "x-dimension"),
    responses=(304, 400, 404, 503),
    response=ServedRelease,
)
async def serve_release(ctx: Ctx) -> Response:
    request = ctx.request
    out = ctx.services.releases.answer(
        ctx.path("organisation"), ctx.path("application"), request.headers, request.query_params.get("toss")
    )
    if out.status == 304:
        return Response(status_code=304, headers=out.headers)
    return Response(out.body, media_type="application/json", headers=out.headers)
