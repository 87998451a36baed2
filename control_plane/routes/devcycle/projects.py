"""DevCycle projects, environments and SDK keys (``/v1/projects``...).

SDK keys are shown once, in the response that creates them (environment creation and
``POST .../keys``); the store keeps only their SHA-256 and a short prefix for display.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

from pydantic import Field
from starlette.responses import Response

from control_plane import authz
from control_plane.errors import ApiError, conflict, not_found
from control_plane.http import Ctx, Router, Write
from control_plane.models import KEY_PATTERN
from control_plane.routes.devcycle.common import (
    DvBody,
    ListQuery,
    Strict,
    Tags,
    dumps,
    environment,
    key_taken,
    list_rows,
    loads,
    project,
    write_project,
)
from control_plane.routes.organisations import create_project
from control_plane.security import key_hash, new_sdk_key
from control_plane.store import new_id, now_iso

router = Router("devcycle-projects")
ORG = ("x-organisation",)
COLOR = r"^#([0-9A-Fa-f]{3}|[0-9A-Fa-f]{4}|[0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})$"
KINDS = ("client", "server", "mobile")
PREFIX_LENGTH = 20
EnvType = Literal["development", "staging", "production", "disaster_recovery"]


# ---------------------------------------------------------------------------------------------
# Request bodies


class Enabled(Strict):
    enabled: bool | None = None


class OptInColors(Strict):
    primary: str | None = Field(default=None, max_length=50)
    secondary: str | None = Field(default=None, max_length=50)


class OptIn(Strict):
    enabled: bool | None = None
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    imageURL: str | None = Field(default=None, max_length=2000)
    colors: OptInColors | None = None
    poweredByAlignment: str | None = Field(default=None, max_length=20)


class SdkTypeVisibility(Strict):
    enabledInFeatureSettings: bool | None = None


class LifeCycle(Strict):
    disableCodeRefChecks: bool | None = None


class Obfuscation(Strict):
    enabled: bool | None = None
    required: bool | None = None


class Dynatrace(Strict):
    enabled: bool | None = None
    environmentMap: dict[str, str] | None = Field(default=None, max_length=100)


class ApprovalWorkflow(Strict):
    enabled: bool | None = None
    allowPublisherBypass: bool | None = None
    defaultReviewers: Tags | None = None


class StalenessEmail(Strict):
    enabled: bool | None = None
    frequency: Literal["weekly", "biweekly", "monthly"] | None = None
    users: Tags | None = None


class Staleness(Strict):
    enabled: bool | None = None
    released: Enabled | None = None
    unmodifiedLong: Enabled | None = None
    unmodifiedShort: Enabled | None = None
    unused: Enabled | None = None
    email: StalenessEmail | None = None


class ProjectSettings(Strict):
    edgeDB: Enabled | None = None
    optIn: OptIn | None = None
    sdkTypeVisibility: SdkTypeVisibility | None = None
    lifeCycle: LifeCycle | None = None
    obfuscation: Obfuscation | None = None
    disablePassthroughRollouts: bool | None = None
    dynatrace: Dynatrace | None = None
    featureApprovalWorkflow: ApprovalWorkflow | None = None
    staleness: Staleness | None = None


class CreateProject(DvBody):
    name: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str = Field(default="", max_length=1000)
    color: str | None = Field(default=None, max_length=9, pattern=COLOR)
    settings: ProjectSettings | None = None


class UpdateProject(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    color: str | None = Field(default=None, max_length=9, pattern=COLOR)
    settings: ProjectSettings | None = None


class EnvironmentSettings(Strict):
    appIconURI: str | None = Field(default=None, max_length=2000)


class CreateEnvironment(DvBody):
    name: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str = Field(default="", max_length=1000)
    color: str | None = Field(default=None, max_length=9, pattern=COLOR)
    type: EnvType
    settings: EnvironmentSettings | None = None


class UpdateEnvironment(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    color: str | None = Field(default=None, max_length=9, pattern=COLOR)
    type: EnvType | None = None
    settings: EnvironmentSettings | None = None


class GenerateKeys(DvBody):
    client: bool = False
    server: bool = False
    mobile: bool = False


# ---------------------------------------------------------------------------------------------
# Views


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


_PROJECT_SELECT = (
    "SELECT p.*, m.color AS dv_color, m.created_by AS dv_created_by FROM projects p "
    "LEFT JOIN dv_project_meta m ON m.project_id = p.id"
)


def project_view(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "_id": row["id"],
        "_organization": row["organisation_id"],
        "_createdBy": row["dv_created_by"] or "",
        "name": row["name"],
        "key": row["key"],
        "description": row["description"],
        "color": row["dv_color"] or "",
        "settings": loads(row["settings"], {}),
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "readonly": False,
    }


def _project_row(db: sqlite3.Connection, project_id: str) -> sqlite3.Row:
    row: sqlite3.Row = db.execute(_PROJECT_SELECT + " WHERE p.id = ?", (project_id,)).fetchone()
    return row


def _key_view(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "prefix": row["prefix"],
        "createdAt": row["created_at"],
        "compromised": row["revoked_at"] is not None,
        "invalidatedAt": row["revoked_at"],
    }


def environment_view(
    db: sqlite3.Connection, row: sqlite3.Row, new_keys: dict[str, str] | None = None
) -> dict[str, Any]:
    """The DevCycle environment; ``new_keys`` (hash -> plaintext) are shown in full, once."""
    keys: dict[str, list[dict[str, Any]]] = {"mobile": [], "client": [], "server": []}
    for k in db.execute(
        "SELECT * FROM sdk_keys WHERE environment_id = ? ORDER BY created_at, rowid", (row["id"],)
    ).fetchall():
        view = _key_view(k)
        if new_keys and k["key_hash"] in new_keys:
            view = {"key": new_keys[k["key_hash"]], **view}
        keys[k["kind"]].append(view)
    meta = db.execute("SELECT created_by FROM dv_environment_meta WHERE environment_id = ?", (row["id"],)).fetchone()
    return {
        "_id": row["id"],
        "_project": row["project_id"],
        "name": row["name"],
        "key": row["key"],
        "description": row["description"],
        "color": row["color"],
        "type": row["type"],
        "_createdBy": meta["created_by"] if meta else "",
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "sdkKeys": keys,
        "settings": loads(row["settings"], {}),
        "readonly": False,
    }


def _add_keys(w: Write, environment_id: str, env_type: str, kinds: tuple[str, ...]) -> dict[str, str]:
    created: dict[str, str] = {}
    now = now_iso()
    for kind in kinds:
        secret = new_sdk_key(kind, env_type)
        digest = key_hash(secret)
        w.db.execute(
            "INSERT INTO sdk_keys (key_hash, environment_id, kind, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
            (digest, environment_id, kind, secret[:PREFIX_LENGTH], now),
        )
        created[digest] = secret
    return created


# ---------------------------------------------------------------------------------------------
# Projects


def _organisation_for_create(w: Write, ctx: Ctx) -> authz.OrgAccess:
    name = ctx.header("x-organisation")
    if not name:
        if w.principal.api_key_org:
            row = w.db.execute("SELECT name FROM organisations WHERE id = ?", (w.principal.api_key_org,)).fetchone()
            name = row["name"] if row else None
        else:
            rows = w.db.execute(
                "SELECT o.name FROM memberships m JOIN organisations o ON o.id = m.organisation_id WHERE m.user_id = ?",
                (w.principal.user_id,),
            ).fetchall()
            if len(rows) == 1:
                name = rows[0]["name"]
    if not name:
        raise ApiError(
            400,
            "x-organisation header is required when you belong to several organisations (or none)",
            details=[{"field": "x-organisation", "code": "required", "message": "header is required"}],
        )
    return authz.org_by_name(w.db, w.principal, name, "admin")


@router.route(
    "POST",
    "/v1/projects",
    summary="Create a project in the caller's organisation",
    body=CreateProject,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_dv_project(ctx: Ctx) -> Any:
    body: CreateProject = ctx.body

    def change(w: Write) -> dict[str, Any]:
        org = _organisation_for_create(w, ctx)
        if w.db.execute("SELECT 1 FROM projects WHERE organisation_id = ? AND key = ?", (org.id, body.key)).fetchone():
            raise conflict(f"a project with key {body.key!r} already exists in this organisation")
        project_id = create_project(w, org.id, body.key, body.name, body.description)
        settings = body.settings.model_dump(exclude_none=True) if body.settings else {}
        w.db.execute("UPDATE projects SET settings = ? WHERE id = ?", (dumps(settings), project_id))
        w.db.execute(
            "INSERT INTO dv_project_meta (project_id, color, created_by) VALUES (?, ?, ?)",
            (project_id, body.color or "", w.principal.user_id),
        )
        w.audit("project.create", f"project:{body.key}", organisation_id=org.id, project_id=project_id)
        return project_view(_project_row(w.db, project_id))

    return ctx.commit(change, status=201)


@router.route("GET", "/v1/projects", summary="List the projects the caller can see", query=ListQuery, headers=ORG)
async def list_dv_projects(ctx: Ctx) -> Any:
    query: ListQuery = ctx.query
    principal = ctx.principal
    where = ["p.organisation_id IN (SELECT organisation_id FROM memberships WHERE user_id = ?)"]
    params: list[Any] = [principal.user_id]
    if principal.api_key_id is not None:
        if principal.effective_role(principal.api_key_org or "", "owner") is None:
            return []
        where.append("p.organisation_id = ?")
        params.append(principal.api_key_org)
    organisation = ctx.header("x-organisation")
    if organisation:
        where.append("p.organisation_id IN (SELECT id FROM organisations WHERE name = ?)")
        params.append(organisation)
    with ctx.services.store.read() as db:
        rows = list_rows(db, _PROJECT_SELECT, where, params, query, alias="p", created_by="m.created_by")
    return [project_view(r) for r in rows]


@router.route("GET", "/v1/projects/{project}", summary="Get a project by id or key", headers=ORG)
async def get_dv_project(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return project_view(_project_row(db, access.id))


@router.route(
    "PATCH",
    "/v1/projects/{project}",
    summary="Update a project (admin)",
    body=UpdateProject,
    headers=ORG,
    responses=(409,),
)
async def update_dv_project(ctx: Ctx) -> Any:
    body: UpdateProject = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        row = _project_row(w.db, access.id)
        if body.key is not None and body.key != row["key"]:
            taken = w.db.execute(
                "SELECT 1 FROM projects WHERE organisation_id = ? AND key = ? AND id != ?",
                (access.organisation_id, body.key, access.id),
            ).fetchone()
            if taken:
                raise conflict(f"a project with key {body.key!r} already exists in this organisation")
        settings = loads(row["settings"], {})
        if body.settings is not None:
            settings = _merge(settings, body.settings.model_dump(exclude_none=True))
        w.db.execute(
            "UPDATE projects SET name = ?, key = ?, description = ?, settings = ?, updated_at = ? WHERE id = ?",
            (
                body.name if body.name is not None else row["name"],
                body.key if body.key is not None else row["key"],
                body.description if body.description is not None else row["description"],
                dumps(settings),
                now_iso(),
                access.id,
            ),
        )
        if body.color is not None:
            w.db.execute(
                "INSERT INTO dv_project_meta (project_id, color) VALUES (?, ?) "
                "ON CONFLICT (project_id) DO UPDATE SET color = excluded.color",
                (access.id, body.color),
            )
        w.audit(
            "project.update",
            f"project:{access.key}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details=body.model_dump(exclude_none=True, exclude={"change_reason"}),
        )
        # disablePassthroughRollouts changes how DevCycle targets are served.
        before = bool(loads(row["settings"], {}).get("disablePassthroughRollouts"))
        if bool(settings.get("disablePassthroughRollouts")) != before:
            w.db.execute(
                "UPDATE feature_configurations SET targeting_version = targeting_version + 1, updated_at = ?"
                " WHERE reflag IS NULL AND feature_id IN (SELECT id FROM features WHERE project_id = ?)",
                (now_iso(), access.id),
            )
        w.touch(access.id)
        return project_view(_project_row(w.db, access.id))

    return ctx.commit(change)


@router.route(
    "DELETE", "/v1/projects/{project}", summary="Delete a project and everything in it (admin)", status=204, headers=ORG
)
async def delete_dv_project(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "admin")
        w.db.execute("DELETE FROM projects WHERE id = ?", (access.id,))
        w.audit("project.delete", f"project:{access.key}", organisation_id=access.organisation_id, project_id=access.id)
        w.touch(access.id)

    ctx.commit(change, status=204)
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------
# Environments


@router.route(
    "POST",
    "/v1/projects/{project}/environments",
    summary="Create an environment; its client, server and mobile SDK keys are returned once",
    body=CreateEnvironment,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_environment(ctx: Ctx) -> Any:
    body: CreateEnvironment = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        if key_taken(w.db, "environments", "project_id", access.id, body.key):
            raise conflict(f"an environment with key {body.key!r} already exists in this project")
        env_id = new_id()
        now = now_iso()
        settings = body.settings.model_dump(exclude_none=True) if body.settings else {}
        w.db.execute(
            "INSERT INTO environments (id, project_id, key, name, type, description, color, settings, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                env_id,
                access.id,
                body.key,
                body.name,
                body.type,
                body.description,
                body.color or "",
                dumps(settings),
                now,
                now,
            ),
        )
        w.db.execute(
            "INSERT INTO dv_environment_meta (environment_id, created_by) VALUES (?, ?)", (env_id, w.principal.user_id)
        )
        created = _add_keys(w, env_id, body.type, KINDS)
        w.audit(
            "environment.create",
            f"environment:{body.key}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"type": body.type, "sdk_keys": [s[:PREFIX_LENGTH] for s in created.values()]},
        )
        w.touch(access.id)
        return environment_view(w.db, environment(w.db, access.id, env_id), created)

    # The keys are shown once: a replay must not return them again, so no idempotency cache.
    return ctx.commit(change, status=201, idempotent=False)


@router.route(
    "GET", "/v1/projects/{project}/environments", summary="List a project's environments", query=ListQuery, headers=ORG
)
async def list_environments(ctx: Ctx) -> Any:
    query: ListQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        rows = list_rows(
            db,
            "SELECT e.* FROM environments e LEFT JOIN dv_environment_meta m ON m.environment_id = e.id",
            ["e.project_id = ?"],
            [access.id],
            query,
            alias="e",
            created_by="m.created_by",
        )
        return [environment_view(db, r) for r in rows]


@router.route(
    "GET", "/v1/projects/{project}/environments/{environment}", summary="Get an environment by id or key", headers=ORG
)
async def get_environment(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return environment_view(db, environment(db, access.id, ctx.path("environment")))


@router.route(
    "PATCH",
    "/v1/projects/{project}/environments/{environment}",
    summary="Update an environment (admin)",
    body=UpdateEnvironment,
    headers=ORG,
    responses=(409,),
)
async def update_environment(ctx: Ctx) -> Any:
    body: UpdateEnvironment = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        row = environment(w.db, access.id, ctx.path("environment"))
        if body.key is not None and key_taken(w.db, "environments", "project_id", access.id, body.key, row["id"]):
            raise conflict(f"an environment with key {body.key!r} already exists in this project")
        settings = loads(row["settings"], {})
        if body.settings is not None:
            settings = _merge(settings, body.settings.model_dump(exclude_none=True))
        w.db.execute(
            "UPDATE environments SET name = ?, key = ?, description = ?, color = ?, type = ?, settings = ?,"
            " updated_at = ? WHERE id = ?",
            (
                body.name if body.name is not None else row["name"],
                body.key if body.key is not None else row["key"],
                body.description if body.description is not None else row["description"],
                body.color if body.color is not None else row["color"],
                body.type if body.type is not None else row["type"],
                dumps(settings),
                now_iso(),
                row["id"],
            ),
        )
        w.audit(
            "environment.update",
            f"environment:{row['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details=body.model_dump(exclude_none=True, exclude={"change_reason"}),
        )
        return environment_view(w.db, environment(w.db, access.id, row["id"]))

    return ctx.commit(change)


@router.route(
    "DELETE",
    "/v1/projects/{project}/environments/{environment}",
    summary="Delete an environment, its configurations and SDK keys (admin)",
    status=204,
    headers=ORG,
)
async def delete_environment(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "admin")
        row = environment(w.db, access.id, ctx.path("environment"))
        w.db.execute("DELETE FROM environments WHERE id = ?", (row["id"],))
        w.audit(
            "environment.delete",
            f"environment:{row['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        w.touch(access.id)

    ctx.commit(change, status=204)
    return Response(status_code=204)


@router.route(
    "POST",
    "/v1/projects/{project}/environments/{environment}/keys",
    summary="Generate new SDK keys (rotation: existing keys keep working); new keys are returned once",
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
        created = _add_keys(w, row["id"], row["type"], kinds)
        w.audit(
            "sdk_key.create",
            f"environment:{row['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"kinds": list(kinds), "prefixes": [s[:PREFIX_LENGTH] for s in created.values()]},
        )
        w.touch(access.id)
        return environment_view(w.db, row, created)

    return ctx.commit(change, idempotent=False)


@router.route(
    "PUT",
    "/v1/projects/{project}/environments/{environment}/keys/{key}/invalidate",
    summary="Invalidate an SDK key (the full key or its displayed prefix) immediately",
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
        w.touch(access.id)
        return environment_view(w.db, row)

    return ctx.commit(change)
