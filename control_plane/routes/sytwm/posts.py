"""Posts: the dashboard writes them (``/admin/posts``: create, edit as a new version, publish,
unpublish) and the key API reads the published ones (``/api/v1/posts``, both key scopes).

Versions are immutable: an edit adds version N+1 and leaves the published one serving until it is
published in turn, and feedback keeps pointing at the version it answered.
"""

from __future__ import annotations

from typing import Any

import orjson

from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, conflict, not_found
from control_plane.http import Ctx, Router, Write
from control_plane.routes.sytwm.common import (
    ANY_KEY,
    ORG,
    dashboard_org,
    key_org,
    post_row,
    published_view,
    version_row,
)
from control_plane.routes.sytwm.models import CreatePost, Definition, NewVersion, Publish, Reason, dump
from control_plane.store import new_id, now_iso

dashboard = Router("sytwm-dashboard")
api = Router("sytwm-api")


def _latest(db: Connection, post_id: str) -> Row:
    row: Row = db.execute(
        "SELECT * FROM sytwm_post_versions WHERE post_id = ? ORDER BY version DESC LIMIT 1", (post_id,)
    ).fetchone()
    return row


def _admin_view(db: Connection, post: Row, versions: bool = False) -> dict[str, Any]:
    latest = _latest(db, post["id"])
    view: dict[str, Any] = {
        "slug": post["slug"],
        "title": latest["title"],
        "latest_version": latest["version"],
        "published_version": post["published_version"],
        "definition": orjson.loads(latest["definition"]),
        "created_at": post["created_at"],
        "updated_at": post["updated_at"],
    }
    if versions:
        rows = db.execute(
            "SELECT version, title, created_at, created_by FROM sytwm_post_versions WHERE post_id = ? ORDER BY version",
            (post["id"],),
        ).fetchall()
        view["versions"] = [dict(r) for r in rows]
    return view


def _add_version(w: Write, post_id: str, version: int, title: str, definition: Definition) -> None:
    w.db.execute(
        "INSERT INTO sytwm_post_versions (post_id, version, title, definition, created_at, created_by)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (post_id, version, title, orjson.dumps(dump(definition)).decode(), now_iso(), w.principal.user_id),
    )


# -- dashboard ----------------------------------------------------------------------------------


@dashboard.route("GET", "/admin/posts", summary="List posts, published or not, with their latest version", headers=ORG)
async def list_admin_posts(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        org = dashboard_org(db, ctx, "read")
        posts = db.execute("SELECT * FROM sytwm_posts WHERE organisation_id = ? ORDER BY slug", (org.id,)).fetchall()
        return [_admin_view(db, p) for p in posts]


@dashboard.route("GET", "/admin/posts/{slug}", summary="A post with its versions", headers=ORG)
async def get_admin_post(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        org = dashboard_org(db, ctx, "read")
        return _admin_view(db, post_row(db, org.id, ctx.path("slug")), versions=True)


@dashboard.route(
    "POST", "/admin/posts", summary="Create a post (version 1, not published)", body=CreatePost, status=201, headers=ORG
)
async def create_post(ctx: Ctx) -> Any:
    body: CreatePost = ctx.body

    def change(w: Write) -> dict[str, Any]:
        org = dashboard_org(w.db, ctx, "write")
        if w.db.execute(
            "SELECT 1 FROM sytwm_posts WHERE organisation_id = ? AND slug = ?", (org.id, body.slug)
        ).fetchone():
            raise conflict(f"a post with slug {body.slug!r} exists")
        post_id, now = new_id(), now_iso()
        w.db.execute(
            "INSERT INTO sytwm_posts (id, organisation_id, slug, published_version, created_at, updated_at)"
            " VALUES (?, ?, ?, NULL, ?, ?)",
            (post_id, org.id, body.slug, now, now),
        )
        _add_version(w, post_id, 1, body.title, body.definition)
        w.audit("sytwm.post.create", f"post:{body.slug}", organisation_id=org.id)
        return _admin_view(w.db, post_row(w.db, org.id, body.slug))

    return ctx.commit(change, status=201)


@dashboard.route(
    "POST",
    "/admin/posts/{slug}/versions",
    summary="Edit a post: add its next version (the published one keeps serving until this is published)",
    body=NewVersion,
    status=201,
    headers=ORG,
)
async def add_post_version(ctx: Ctx) -> Any:
    body: NewVersion = ctx.body
    slug = ctx.path("slug")

    def change(w: Write) -> dict[str, Any]:
        org = dashboard_org(w.db, ctx, "write")
        post = post_row(w.db, org.id, slug)
        latest = _latest(w.db, post["id"])
        version = latest["version"] + 1
        _add_version(w, post["id"], version, body.title or latest["title"], body.definition)
        w.db.execute("UPDATE sytwm_posts SET updated_at = ? WHERE id = ?", (now_iso(), post["id"]))
        w.audit("sytwm.post.version", f"post:{slug}", organisation_id=org.id, details={"version": version})
        return _admin_view(w.db, post_row(w.db, org.id, slug))

    return ctx.commit(change, status=201)


@dashboard.route(
    "POST",
    "/admin/posts/{slug}/publish",
    summary="Publish a version of a post (the latest unless named)",
    body=Publish,
    headers=ORG,
)
async def publish_post(ctx: Ctx) -> Any:
    body: Publish = ctx.body
    slug = ctx.path("slug")

    def change(w: Write) -> dict[str, Any]:
        org = dashboard_org(w.db, ctx, "write")
        post = post_row(w.db, org.id, slug)
        version = body.version or _latest(w.db, post["id"])["version"]
        try:
            version_row(w.db, post["id"], version)
        except ApiError:
            raise not_found(f"version {version} of post {slug!r}") from None
        w.db.execute(
            "UPDATE sytwm_posts SET published_version = ?, updated_at = ? WHERE id = ?",
            (version, now_iso(), post["id"]),
        )
        w.audit("sytwm.post.publish", f"post:{slug}", organisation_id=org.id, details={"version": version})
        return _admin_view(w.db, post_row(w.db, org.id, slug))

    return ctx.commit(change)


@dashboard.route(
    "POST",
    "/admin/posts/{slug}/unpublish",
    summary="Unpublish a post (keys no longer see it)",
    body=Reason,
    headers=ORG,
)
async def unpublish_post(ctx: Ctx) -> Any:
    slug = ctx.path("slug")

    def change(w: Write) -> dict[str, Any]:
        org = dashboard_org(w.db, ctx, "write")
        post = post_row(w.db, org.id, slug)
        w.db.execute(
            "UPDATE sytwm_posts SET published_version = NULL, updated_at = ? WHERE id = ?", (now_iso(), post["id"])
        )
        w.audit("sytwm.post.unpublish", f"post:{slug}", organisation_id=org.id)
        return _admin_view(w.db, post_row(w.db, org.id, slug))

    return ctx.commit(change)


# -- key API --------------------------------------------------------------------------------------

_PUBLISHED = (
    "SELECT p.slug, v.* FROM sytwm_posts p JOIN sytwm_post_versions v"
    " ON v.post_id = p.id AND v.version = p.published_version WHERE p.organisation_id = ?"
)


@api.route("GET", "/api/v1/posts", summary="Every published post", keys=ANY_KEY)
async def list_posts(ctx: Ctx) -> Any:
    rows = ctx.services.store.all(_PUBLISHED + " ORDER BY p.slug", (key_org(ctx),))
    return [published_view(r["slug"], r) for r in rows]


@api.route("GET", "/api/v1/posts/{slug}", summary="One published post definition", keys=ANY_KEY)
async def get_post(ctx: Ctx) -> Any:
    row = ctx.services.store.one(_PUBLISHED + " AND p.slug = ?", (key_org(ctx), ctx.path("slug")))
    if row is None:
        raise not_found("post")
    return published_view(row["slug"], row)
