"""Airborne organisations, applications (= projects) and members with owner/admin/write/read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from contract.airborne_names import application_key, name_problem
from control_plane import authz
from control_plane.errors import ApiError, conflict, forbidden, not_found
from control_plane.http import Ctx, Router, Write
from control_plane.models import Body
from control_plane.routes.airborne.responses import ApplicationResponse, MemberList, OrganisationResponse
from control_plane.routes.users import user_view
from control_plane.store import new_id, now_iso

router = Router("organisations", required_headers=("x-organisation",))
ORG = ("x-organisation",)


def _free_name(value: str) -> str:
    """A name as the document allows it (spaces, capitals, any script), without what would make
    its key or URL ambiguous (:func:`contract.airborne_names.name_problem`)."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


FreeName = Annotated[str, AfterValidator(_free_name)]


class CreateOrganisation(Body):
    name: FreeName = Field(min_length=1, max_length=50, description="Organisation name (unique; spaces allowed)")


class OrganisationRequest(Body):
    organisation_name: str = Field(min_length=1, max_length=50)
    name: str = Field(min_length=1, max_length=100)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, max_length=50)
    play_store_link: str | None = Field(default=None, max_length=500)
    app_store_link: str | None = Field(default=None, max_length=500)


class CreateApplication(Body):
    application: FreeName = Field(
        min_length=1,
        max_length=100,
        description="Application name (capitals and spaces allowed; its key is the name lowercased, "
        "other characters than [a-z0-9-_.] as '-')",
    )


class Member(Body):
    user: str = Field(min_length=3, max_length=254, description="User email")
    access: Literal["owner", "admin", "write", "read"]


class RemoveMember(Body):
    user: str = Field(min_length=3, max_length=254, description="User email")


def _org_header(ctx: Ctx) -> str:
    name = ctx.header("x-organisation")
    if not name:
        raise ApiError(
            400,
            "x-organisation header is required",
            details=[{"field": "x-organisation", "code": "required", "message": "header is required"}],
        )
    return name


def _org_view(ctx: Ctx, name: str) -> dict[str, Any]:
    with ctx.services.store.read() as db:
        view = user_view(db, ctx.principal.user_id)
    for org in view["organisations"]:
        if org["name"] == name:
            return dict(org)
    raise not_found("organisation")


@router.route(
    "POST",
    "/organisations/create",
    summary="Create an organisation; the caller becomes its owner",
    body=CreateOrganisation,
    responses=(409,),
    response=OrganisationResponse,
)
async def create_organisation(ctx: Ctx) -> Any:
    body: CreateOrganisation = ctx.body
    if ctx.principal.api_key_id is not None:
        raise forbidden("API keys cannot create organisations")

    def change(w: Write) -> dict[str, Any]:
        if w.db.execute("SELECT 1 FROM organisations WHERE name = ?", (body.name,)).fetchone():
            raise conflict("organisation name is taken")
        org_id = new_id()
        w.db.execute(
            "INSERT INTO organisations (id, name, created_by, created_at) VALUES (?, ?, ?, ?)",
            (org_id, body.name, w.principal.user_id, now_iso()),
        )
        w.db.execute(
            "INSERT INTO memberships (organisation_id, user_id, role, created_at) VALUES (?, ?, 'owner', ?)",
            (org_id, w.principal.user_id, now_iso()),
        )
        w.audit("organisation.create", f"organisation:{body.name}", organisation_id=org_id)
        return {"name": body.name, "applications": [], "access": ["owner"]}

    return ctx.commit(change)


@router.route(
    "POST",
    "/organisations/request",
    summary="Request an organisation (when creation is disabled)",
    body=OrganisationRequest,
)
async def request_organisation(ctx: Ctx) -> Any:
    body: OrganisationRequest = ctx.body

    def change(w: Write) -> dict[str, Any]:
        w.audit(
            "organisation.request",
            f"organisation:{body.organisation_name}",
            details=body.model_dump(exclude={"change_reason"}),
        )
        return {"organisation_name": body.organisation_name, "message": "request recorded"}

    return ctx.commit(change)


@router.route("GET", "/organisations", summary="Organisations the caller belongs to")
async def list_organisations(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        orgs = user_view(db, ctx.principal.user_id)["organisations"]
    if ctx.principal.api_key_org:
        with ctx.services.store.read() as db:
            row = db.execute("SELECT name FROM organisations WHERE id = ?", (ctx.principal.api_key_org,)).fetchone()
        orgs = [o for o in orgs if row and o["name"] == row["name"]]
    return orgs


@router.route("DELETE", "/organisations/{organisation_name}", summary="Delete an organisation (admin or owner)")
async def delete_organisation(ctx: Ctx) -> Any:
    name = ctx.path("organisation_name")

    def change(w: Write) -> dict[str, Any]:
        org = authz.org_by_name(w.db, w.principal, name, "admin")
        # Its projects disappear with it: their snapshots must be withdrawn from the edges.
        for row in w.db.execute("SELECT id FROM projects WHERE organisation_id = ?", (org.id,)).fetchall():
            w.touch(row["id"], features=())  # nothing is left to build: its snapshots are withdrawn
        w.db.execute("DELETE FROM organisations WHERE id = ?", (org.id,))
        w.audit("organisation.delete", f"organisation:{name}", organisation_id=org.id)
        return {"Success": f"organisation {name} deleted"}

    return ctx.commit(change)


@router.route(
    "POST",
    "/organisations/applications/create",
    summary="Create an application (project)",
    body=CreateApplication,
    headers=ORG,
    responses=(409,),
    response=ApplicationResponse,
)
async def create_application(ctx: Ctx) -> Any:
    body: CreateApplication = ctx.body
    org_name = _org_header(ctx)

    def change(w: Write) -> dict[str, Any]:
        org = authz.org_by_name(w.db, w.principal, org_name, "admin")
        key = application_key(body.application)
        taken = w.db.execute(
            "SELECT name FROM projects WHERE organisation_id = ? AND key = ?", (org.id, key)
        ).fetchone()
        if taken is not None:
            same = "" if taken["name"] == body.application else f" as {taken['name']!r} (the same key, {key!r})"
            raise conflict(f"application already exists in this organisation{same}")
        project_id = create_project(w, org.id, key, body.application, "")
        w.audit("application.create", f"application:{body.application}", organisation_id=org.id, project_id=project_id)
        return {"application": body.application, "organisation": org.name, "access": [org.role]}

    return ctx.commit(change)


def create_project(w: Write, organisation_id: str, key: str, name: str, description: str) -> str:
    project_id = new_id()
    now = now_iso()
    w.db.execute(
        "INSERT INTO projects (id, organisation_id, key, name, description, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (project_id, organisation_id, key, name, description, now, now),
    )
    return project_id


def _member_user(w: Write, email: str) -> str:
    row = w.db.execute("SELECT id FROM users WHERE email = ?", (email.lower(),)).fetchone()
    if row is None:
        raise not_found("user")
    return str(row["id"])


def _membership(w: Write, org_name: str, email: str) -> tuple[authz.OrgAccess, str, str]:
    """The organisation (caller needs admin), the member's user id and current role; 404 if not a member."""
    org = authz.org_by_name(w.db, w.principal, org_name, "admin")
    user_id = _member_user(w, email)
    row = w.db.execute(
        "SELECT role FROM memberships WHERE organisation_id = ? AND user_id = ?", (org.id, user_id)
    ).fetchone()
    if row is None:
        raise not_found("member")
    return org, user_id, str(row["role"])


def _guard_owner_change(org: authz.OrgAccess, granted: str | None, current: str | None) -> None:
    # Only owners hand out or take away ownership.
    if (granted == "owner" or current == "owner") and org.role != "owner":
        raise forbidden("only an owner can grant or revoke owner access")


def _owners(w: Write, org_id: str) -> int:
    return int(
        w.db.execute(
            "SELECT COUNT(*) FROM memberships WHERE organisation_id = ? AND role = 'owner'", (org_id,)
        ).fetchone()[0]
    )


@router.route(
    "POST",
    "/organisation/user/create",
    summary="Add a user to the organisation",
    body=Member,
    headers=ORG,
    responses=(409,),
)
async def add_member(ctx: Ctx) -> Any:
    body: Member = ctx.body
    org_name = _org_header(ctx)

    def change(w: Write) -> dict[str, Any]:
        org = authz.org_by_name(w.db, w.principal, org_name, "admin")
        _guard_owner_change(org, body.access, None)
        user_id = _member_user(w, body.user)
        if w.db.execute(
            "SELECT 1 FROM memberships WHERE organisation_id = ? AND user_id = ?", (org.id, user_id)
        ).fetchone():
            raise conflict("user is already a member")
        w.db.execute(
            "INSERT INTO memberships (organisation_id, user_id, role, created_at) VALUES (?, ?, ?, ?)",
            (org.id, user_id, body.access, now_iso()),
        )
        w.audit("member.add", f"user:{user_id}", organisation_id=org.id, details={"access": body.access})
        return {"success": True, "message": f"{body.user} added with {body.access} access"}

    return ctx.commit(change)


@router.route("POST", "/organisation/user/update", summary="Change a member's access level", body=Member, headers=ORG)
async def update_member(ctx: Ctx) -> Any:
    body: Member = ctx.body
    org_name = _org_header(ctx)

    def change(w: Write) -> dict[str, Any]:
        org, user_id, role = _membership(w, org_name, body.user)
        _guard_owner_change(org, body.access, role)
        if role == "owner" and body.access != "owner" and _owners(w, org.id) == 1:
            raise conflict("an organisation needs at least one owner")
        w.db.execute(
            "UPDATE memberships SET role = ? WHERE organisation_id = ? AND user_id = ?", (body.access, org.id, user_id)
        )
        w.audit("member.update", f"user:{user_id}", organisation_id=org.id, details={"from": role, "to": body.access})
        return {"success": True, "message": f"{body.user} now has {body.access} access"}

    return ctx.commit(change)


@router.route("POST", "/organisation/user/remove", summary="Remove a member", body=RemoveMember, headers=ORG)
async def remove_member(ctx: Ctx) -> Any:
    body: RemoveMember = ctx.body
    org_name = _org_header(ctx)

    def change(w: Write) -> dict[str, Any]:
        org, user_id, role = _membership(w, org_name, body.user)
        _guard_owner_change(org, None, role)
        if role == "owner" and _owners(w, org.id) == 1:
            raise conflict("an organisation needs at least one owner")
        w.db.execute("DELETE FROM memberships WHERE organisation_id = ? AND user_id = ?", (org.id, user_id))
        w.db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE organisation_id = ? AND user_id = ? AND revoked_at IS NULL",
            (now_iso(), org.id, user_id),
        )
        w.audit("member.remove", f"user:{user_id}", organisation_id=org.id)
        return {"success": True, "message": f"{body.user} removed"}

    return ctx.commit(change)


@router.route(
    "GET", "/organisation/user/list", summary="Members and their access levels", headers=ORG, response=MemberList
)
async def list_members(ctx: Ctx) -> Any:
    org_name = _org_header(ctx)
    with ctx.services.store.read() as db:
        org = authz.org_by_name(db, ctx.principal, org_name, "read")
        rows = db.execute(
            "SELECT u.id, u.name, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id "
            "WHERE m.organisation_id = ? ORDER BY u.name",
            (org.id,),
        ).fetchall()
    # user_id (ours): what change-request reviewers and audit entries name a member by.
    return {
        "users": [{"username": r["name"], "email": r["email"], "roles": [r["role"]], "user_id": r["id"]} for r in rows]
    }
