"""Scoped API keys for automation of the admin API (``fe_…``): shown once, stored as SHA-256,
revocable. The keys of the /api/v1 API (``sytwm_…``) live in the same table and are managed at
``/admin/api-keys`` (``control_plane.routes.sytwm.keys``); these routes neither list nor revoke them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from control_plane import authz
from control_plane.errors import forbidden, not_found
from control_plane.http import Ctx, Router, Write
from control_plane.models import Body
from control_plane.security import ADMIN_API, key_display_prefix, key_hash, new_api_key
from control_plane.store import new_id, now_iso

router = Router("api-keys")


class CreateApiKey(Body):
    name: str = Field(min_length=1, max_length=100)
    scope: Literal["read", "write", "submit", "admin"]


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "scope": row["scope"],
        "prefix": row["prefix"],
        "createdAt": row["created_at"],
        "lastUsedAt": row["last_used_at"],
        "revokedAt": row["revoked_at"],
    }


@router.route(
    "POST",
    "/organisations/{organisation_name}/api-keys",
    summary="Create an API key (shown once)",
    body=CreateApiKey,
    status=201,
)
async def create_api_key(ctx: Ctx) -> Any:
    body: CreateApiKey = ctx.body
    org_name = ctx.path("organisation_name")
    if ctx.principal.api_key_id is not None:
        raise forbidden("API keys cannot create API keys")

    def change(w: Write) -> dict[str, Any]:
        org = authz.org_by_name(w.db, w.principal, org_name, "admin")
        secret = new_api_key(body.scope)
        key_id = new_id()
        w.db.execute(
            "INSERT INTO api_keys (id, key_hash, prefix, name, scope, organisation_id, user_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key_id,
                key_hash(secret),
                key_display_prefix(secret),
                body.name,
                body.scope,
                org.id,
                w.principal.user_id,
                now_iso(),
            ),
        )
        w.audit("api_key.create", f"api_key:{key_id}", organisation_id=org.id, details={"scope": body.scope})
        row = w.db.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return {**_view(row), "key": secret}

    # The secret is shown once: a replay must not return it again, so no idempotency cache.
    return ctx.commit(change, status=201, idempotent=False)


@router.route("GET", "/organisations/{organisation_name}/api-keys", summary="List API keys (without secrets)")
async def list_api_keys(ctx: Ctx) -> Any:
    org_name = ctx.path("organisation_name")
    with ctx.services.store.read() as db:
        org = authz.org_by_name(db, ctx.principal, org_name, "admin")
        rows = db.execute(
            "SELECT * FROM api_keys WHERE organisation_id = ? AND api = ? ORDER BY created_at", (org.id, ADMIN_API)
        ).fetchall()
    return [_view(r) for r in rows]


@router.route("DELETE", "/organisations/{organisation_name}/api-keys/{key_id}", summary="Revoke an API key")
async def revoke_api_key(ctx: Ctx) -> Any:
    org_name, key_id = ctx.path("organisation_name"), ctx.path("key_id")

    def change(w: Write) -> dict[str, Any]:
        org = authz.org_by_name(w.db, w.principal, org_name, "admin")
        row = w.db.execute(
            "SELECT * FROM api_keys WHERE id = ? AND organisation_id = ? AND api = ?", (key_id, org.id, ADMIN_API)
        ).fetchone()
        if row is None:
            raise not_found("API key")
        w.db.execute("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (now_iso(), key_id))
        w.audit("api_key.revoke", f"api_key:{key_id}", organisation_id=org.id)
        return _view(w.db.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone())

    return ctx.commit(change)
