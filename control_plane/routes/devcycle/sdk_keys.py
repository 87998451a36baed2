"""DevCycle SDK keys of an environment: ``POST .../environments/{environment}/sdk-keys`` and
``DELETE .../sdk-keys/{key}`` (DevCycle's paths), with the earlier ``POST .../keys`` and
``PUT .../keys/{key}/invalidate`` kept as aliases.

The edge authenticates by the key's SHA-256 (``sdk_keys``); the full key is also kept AES-GCM
encrypted (``dv_sdk_key_secrets``, :mod:`control_plane.key_vault`) so that admins read it back
in ``sdkKeys[type][i].key`` as the DevCycle CLI does. Rotation adds keys (old ones keep
working); invalidation takes the full key or its displayed prefix.
"""

from __future__ import annotations

from typing import Any

from contract.sdk_keys import KINDS, Kind
from control_plane.errors import ApiError, conflict, not_found
from control_plane.http import Ctx, Write
from control_plane.key_vault import KeyVault
from control_plane.routes.devcycle.common import ORG, dv_router, environment, write_project
from control_plane.routes.devcycle.models import GenerateKeys
from control_plane.routes.devcycle.views import environment_view
from control_plane.security import key_hash, new_sdk_key
from control_plane.store import now_iso

router = dv_router("devcycle-projects")

PREFIX_LENGTH = 20


def add_keys(w: Write, vault: KeyVault, environment_id: str, env_type: str, kinds: tuple[Kind, ...]) -> dict[str, str]:
    """One new key per kind for the environment, by hash -> plaintext (kept encrypted)."""
    created: dict[str, str] = {}
    now = now_iso()
    for kind in kinds:
        secret = new_sdk_key(kind, env_type)
        digest = key_hash(secret)
        w.db.execute(
            "INSERT INTO sdk_keys (key_hash, environment_id, kind, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
            (digest, environment_id, kind, secret[:PREFIX_LENGTH], now),
        )
        w.db.execute(
            "INSERT INTO dv_sdk_key_secrets (key_hash, ciphertext) VALUES (?, ?)", (digest, vault.seal(secret, digest))
        )
        created[digest] = secret
    return created


@router.route(
    "POST",
    "/v1/projects/{project}/environments/{environment}/sdk-keys",
    summary="Generate new SDK keys (rotation: existing keys keep working)",
    body=GenerateKeys,
    headers=ORG,
)
async def generate_sdk_keys(ctx: Ctx) -> Any:
    return await generate_keys(ctx)


@router.route(
    "POST",
    "/v1/projects/{project}/environments/{environment}/keys",
    summary="Generate new SDK keys (alias of POST .../sdk-keys)",
    body=GenerateKeys,
    headers=ORG,
)
async def generate_keys(ctx: Ctx) -> Any:
    body: GenerateKeys = ctx.body
    kinds = tuple(k for k in KINDS if getattr(body, k))
    if not kinds:
        raise ApiError(
            400,
            "choose at least one of client, server, mobile",
            details=[{"field": "client", "code": "required", "message": "no SDK key type selected"}],
        )

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        row = environment(w.db, access.id, ctx.path("environment"))
        created = add_keys(w, ctx.services.vault, row["id"], row["type"], kinds)
        w.audit(
            "sdk_key.create",
            f"environment:{row['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"kinds": list(kinds), "prefixes": [s[:PREFIX_LENGTH] for s in created.values()]},
        )
        w.touch(access.id, features=())  # no feature changed (control_plane.incremental)
        return environment_view(w.db, row, created, ctx.services.vault)

    return ctx.commit(change, idempotent=False)


@router.route(
    "DELETE",
    "/v1/projects/{project}/environments/{environment}/sdk-keys/{key}",
    summary="Invalidate an SDK key (the full key or its displayed prefix) immediately",
    headers=ORG,
)
async def invalidate_sdk_key(ctx: Ctx) -> Any:
    return await invalidate_key(ctx)


@router.route(
    "PUT",
    "/v1/projects/{project}/environments/{environment}/keys/{key}/invalidate",
    summary="Invalidate an SDK key (alias of DELETE .../sdk-keys/{key})",
    headers=ORG,
)
async def invalidate_key(ctx: Ctx) -> Any:
    sent = ctx.path("key")

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        row = environment(w.db, access.id, ctx.path("environment"))
        matches = w.db.execute(
            "SELECT key_hash, prefix, kind FROM sdk_keys WHERE environment_id = ? AND (key_hash = ? OR prefix = ?)",
            (row["id"], key_hash(sent), sent),
        ).fetchall()
        if not matches:
            raise not_found("SDK key")
        if len(matches) > 1:
            raise conflict("several SDK keys share this prefix; send the full key")
        w.db.execute(
            "UPDATE sdk_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_hash = ?",
            (now_iso(), matches[0]["key_hash"]),
        )
        w.audit(
            "sdk_key.invalidate",
            f"environment:{row['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"kind": matches[0]["kind"], "prefix": matches[0]["prefix"]},
        )
        w.touch(access.id, features=())  # no feature changed (control_plane.incremental)
        return environment_view(w.db, row, readable=ctx.services.vault)

    return ctx.commit(change)
