"""Pieces the shareyourthoughtswith.me route modules share: who may call the dashboard routes and
the key API, the organisation of a request, opaque list cursors and post look-ups. Nothing here
declares a route."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from control_plane import authz
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, forbidden, not_found, validation
from control_plane.http import Ctx
from control_plane.security import SYTWM_API

ORG = ("x-organisation",)
# Who passes the key API's routes (the document: "Both scopes pass" for posts).
SUBMIT = authz.KeyAccess(SYTWM_API, ("submit",))
READ = authz.KeyAccess(SYTWM_API, ("read",))
ANY_KEY = authz.KeyAccess(SYTWM_API, ("submit", "read"))


def dashboard_org(db: Connection, ctx: Ctx, needed: str) -> authz.OrgAccess:
    """The ``x-organisation`` of a dashboard (``/admin``) request, through the signed-in user's
    membership, at ``needed``. The dashboard takes a user's token only: an API key of any kind
    is refused (403), so a leaked key can neither mint keys nor rewrite posts."""
    if ctx.principal.api_key_id is not None:
        raise forbidden("the /admin routes take a signed-in user's token, not an API key")
    name = ctx.header("x-organisation")
    if not name:
        raise validation("the x-organisation header is required", "x-organisation", "required")
    return authz.org_by_name(db, ctx.principal, name, needed)


def key_org(ctx: Ctx) -> str:
    """The organisation of a key-API request: the one its key was issued in."""
    org = ctx.principal.api_key_org
    assert org is not None, "key-API routes are admitted for API keys only"
    return org


def encode_cursor(kind: str, position: int) -> str:
    """An opaque cursor: the position to continue below (a sequence number), tagged with the
    list it belongs to so that one list's cursor is refused by another."""
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> int | None:
    """The position of a cursor from :func:`encode_cursor` (None: the first page); 400 otherwise."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    tag, _, number = text.partition(":")
    if tag != kind or not number.isascii() or not number.isdigit() or len(number) > 18:
        raise validation("cursor is not a next_cursor this list gave out", "query.cursor", "invalid_cursor")
    return int(number)


def page(rows: list[Row], limit: int, kind: str, position: str) -> tuple[list[Row], str | None]:
    """The first ``limit`` of ``limit + 1`` rows fetched newest first, and the cursor after them
    (None when nothing is left)."""
    if len(rows) <= limit:
        return rows, None
    shown = rows[:limit]
    return shown, encode_cursor(kind, int(shown[-1][position]))


def post_row(db: Connection, organisation_id: str, slug: str) -> Row:
    row: Row | None = db.execute(
        "SELECT * FROM sytwm_posts WHERE organisation_id = ? AND slug = ?", (organisation_id, slug)
    ).fetchone()
    if row is None:
        raise not_found("post")
    return row


def version_row(db: Connection, post_id: str, version: int) -> Row:
    row: Row | None = db.execute(
        "SELECT * FROM sytwm_post_versions WHERE post_id = ? AND version = ?", (post_id, version)
    ).fetchone()
    if row is None:
        raise not_found("post version")
    return row


def published_view(slug: str, version: Row) -> dict[str, Any]:
    """A published post as the key API shows it."""
    return {
        "slug": slug,
        "title": version["title"],
        "version": version["version"],
        "definition": orjson.loads(version["definition"]),
    }


def too_large(field: str, limit: int) -> ApiError:
    return ApiError(
        413,
        f"{field} larger than {limit} bytes",
        details=[{"field": field, "code": "too_large", "message": f"at most {limit} bytes when encoded"}],
    )
