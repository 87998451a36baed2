"""The keys of the key API, issued at ``/admin/api-keys``: ``sytwm_sk_…`` (submit) and
``sytwm_rk_…`` (read). Rows of the same ``api_keys`` table as the admin API's ``fe_`` keys, with
``api = 'sytwm'`` (README, "API keys"): hashed with :func:`control_plane.security.key_hash`,
shown once, revoked at once (every request looks its key up)."""

from __future__ import annotations

from typing import Any

from control_plane.dialect import Connection, Row
from control_plane.errors import not_found
from control_plane.http import Ctx, Router, Write
from control_plane.routes.sytwm.common import ORG, dashboard_org
from control_plane.routes.sytwm.models import CreateKey
from control_plane.security import SYTWM_API, key_display_prefix, key_hash, new_api_key
from control_plane.store import new_id, now_iso

router = Router("sytwm-dashboard")


def _view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "scope": row["scope"],
        "prefix": row["prefix"],
        "created_at": row["created_at"],
        "last_used_at": row["last_used_at"],
        "revoked_at": row["revoked_at"],
    }


def _key(db: Connection, organisation_id: str, key_id: str) -> Row:
    row: Row | None = db.execute(
        "SELECT * FROM api_keys WHERE id = ? AND organisation_id = ? AND api = ?", (key_id, organisation_id, SYTWM_API)
    ).fetchone()
    if row is None:
        raise not_found("API key")
    return row


@router.route("GET", "/admin/api-keys", summary="List the /api/v1 keys (without secrets)", headers=ORG)
async def list_sytwm_keys(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        org = dashboard_org(db, ctx, "admin")
        rows = db.execute(
            "SELECT * FROM api_keys WHERE organisation_id = ? AND api = ? ORDER BY created_at, id", (org.id, SYTWM_API)
        ).fetchall()
    return [_view(r) for r in rows]


@router.route(
    "POST",
    "/admin/api-keys",
    summary="Create a /api/v1 key: submit (sytwm_sk_) or read (sytwm_rk_); the secret is shown once",
    body=CreateKey,
    status=201,
    headers=ORG,
)
async def create_sytwm_key(ctx: Ctx) -> Any:
    body: CreateKey = ctx.body

    def change(w: Write) -> dict[str, Any]:
        org = dashboard_org(w.db, ctx, "admin")
        secret = new_api_key(body.scope, SYTWM_API)
        key_id = new_id()
        w.db.execute(
            "INSERT INTO api_keys (id, key_hash, prefix, name, scope, api, organisation_id, user_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key_id,
                key_hash(secret),
                key_display_prefix(secret),
                body.name,
                body.scope,
                SYTWM_API,
                org.id,
                w.principal.user_id,
                now_iso(),
            ),
        )
        w.audit("sytwm.api_key.create", f"api_key:{key_id}", organisation_id=org.id, details={"scope": body.scope})
        return {**_view(_key(w.db, org.id, key_id)), "key": secret}

    # The secret is shown once: a replay must not return it again, so no idempotency cache.
    return ctx.commit(change, status=201, idempotent=False)


@router.route("DELETE", "/admin/api-keys/{key_id}", summary="Revoke a /api/v1 key (at once)", headers=ORG)
async def revoke_sytwm_key(ctx: Ctx) -> Any:
    key_id = ctx.path("key_id")

    def change(w: Write) -> dict[str, Any]:
        org = dashboard_org(w.db, ctx, "admin")
        _key(w.db, org.id, key_id)
        w.db.execute("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (now_iso(), key_id))
        w.audit("sytwm.api_key.revoke", f"api_key:{key_id}", organisation_id=org.id)
        return _view(_key(w.db, org.id, key_id))

    return ctx.commit(change)
