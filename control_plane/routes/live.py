"""Live state for the dashboard: what the control plane published, whether the configured edges
(``--edge-urls``) are ready and at which version, per environment the flag checks SDKs
reported (``feature-flag-event`` events), where there are any, and which Airborne release the
edge serves a dimension context.

Read-only; the edges are asked server-side so that the page's Content-Security-Policy can stay
``connect-src 'self'`` and edges need not allow the dashboard's origin.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, Field

from control_plane import authz
from control_plane.http import Ctx, Router
from control_plane.routes.airborne.common import APP
from control_plane.routes.devcycle.common import ORG, project

router = Router("live")

# An edge that does not answer /ready within this is reported unreachable (the page polls).
PROBE_TIMEOUT = 2.0


async def _probe(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        r = await client.get(url + "/ready")
    except httpx.HTTPError as e:
        return {"url": url, "reachable": False, "ready": False, "error": str(e) or type(e).__name__}
    try:
        body = orjson.loads(r.content)
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return {
        "url": url,
        "reachable": True,
        "ready": r.status_code == 200 and body.get("ready") is True,
        "status": r.status_code,
        "version": body.get("version"),
        "environments": body.get("environments"),
        "notReady": body.get("notReady", []),
    }


@router.route(
    "GET", "/live/edges", summary="The control plane's published version and each configured edge's /ready (signed in)"
)
async def edges(ctx: Ctx) -> Any:
    urls = ctx.services.settings.edge_urls
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        probes = await asyncio.gather(*(_probe(client, u) for u in urls))
    publish = ctx.request.app.state.publisher.status()
    return {"controlPlane": {"version": publish["version"], "ok": publish["ok"]}, "edges": list(probes)}


@router.route(
    "GET",
    "/v1/projects/{project}/live",
    summary="Per environment: active features and the flag checks SDKs reported, by flag",
    headers=ORG,
)
async def project_live(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        envs = db.execute(
            "SELECT id, key, name FROM environments WHERE project_id = ? ORDER BY created_at", (access.id,)
        ).fetchall()
        out = []
        for env in envs:
            active = db.execute(
                "SELECT COUNT(*) AS n FROM feature_configurations c JOIN features f ON f.id = c.feature_id"
                " WHERE c.environment_id = ? AND c.status = 'active' AND f.status != 'archived'",
                (env["id"],),
            ).fetchone()["n"]
            checks = db.execute(
                "SELECT name, COUNT(*) AS n, MAX(received_at) AS last FROM events"
                " WHERE environment_id = ? AND type = 'feature-flag-event' GROUP BY name ORDER BY name",
                (env["id"],),
            ).fetchall()
            out.append(
                {
                    "key": env["key"],
                    "name": env["name"],
                    "activeFeatures": active,
                    "flagChecks": [{"flag": c["name"], "count": c["n"], "last": c["last"]} for c in checks],
                }
            )
    return {"project": access.key, "environments": out}


class WhichRelease(BaseModel):
    dimensions: str = Field(default="", max_length=4096, description="An x-dimensions header value: k=v;k2=v2 or JSON")


@router.route(
    "GET",
    "/live/release",
    summary="Which release the first configured edge serves for ?dimensions= (an x-dimensions value), as it answers",
    query=WhichRelease,
    headers=APP,
)
async def which_release(ctx: Ctx) -> Any:
    query: WhichRelease = ctx.query
    with ctx.services.store.read() as db:
        app = authz.application(db, ctx.principal, ctx.header("x-organisation"), ctx.header("x-application"), "read")
    organisation, application = app.organisation_name, app.key
    urls = ctx.services.settings.edge_urls
    # Like /live/edges, an edge that is missing or does not answer is the state reported, not a
    # failure of this request.
    if not urls:
        return {"edge": None, "reachable": False, "error": "no edge is configured (--edge-urls)"}
    url = f"{urls[0]}/release/{quote(organisation, safe='')}/{quote(application, safe='')}"
    headers = {"x-dimensions": query.dimensions} if query.dimensions else {}
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
            r = await client.get(url, headers=headers)
    except httpx.HTTPError as e:
        return {"edge": urls[0], "reachable": False, "error": str(e) or type(e).__name__}
    try:
        answer: Any = orjson.loads(r.content)
    except orjson.JSONDecodeError:
        answer = r.text[:1000]
    return {"edge": urls[0], "reachable": True, "status": r.status_code, "answer": answer}
