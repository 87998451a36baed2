"""DevCycle feature change requests (``/v2/projects/{project}/features/{feature}/change-requests``
and the project-wide list ``/v2/projects/{project}/change-requests``).

A change request holds a proposed ``PATCH`` as sent (``path``, ``method``, ``body``) and moves
``draft`` → (submit) ``pending`` → (review) ``approved`` or ``rejected`` → (apply) ``applied``;
``cancel`` ends any open one. Apply runs the very write function the direct route runs (the
``*_change`` factories of ``features``, ``features_v2`` and ``configurations``) with
``Write.change_request`` set, so the approval gate lets it through; it re-validates the stored
body first and refuses with 409 if the feature changed since the request was created. Who may do what: ``approval``.

The PATCHes a change request may hold (:func:`plan`): ``/v1|v2/projects/{p}/features/{f}``,
``…/status`` and ``…/static-configuration`` (v1 and v2 alike), and
``/v1/projects/{p}/features/{f}/configurations?environment=…``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from control_plane import authz
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, conflict, forbidden, not_found, validation
from control_plane.http import Ctx, Write, parse_model
from control_plane.routes.devcycle import approval
from control_plane.routes.devcycle.common import (
    ORG,
    dumps,
    dv_router,
    feature,
    list_rows,
    loads,
    project,
    write_project,
)
from control_plane.routes.devcycle.configurations import configuration_change
from control_plane.routes.devcycle.features import feature_status_change, update_feature_change
from control_plane.routes.devcycle.features_v2 import UpdateStaticConfiguration, static_configuration_change
from control_plane.routes.devcycle.flow_models import (
    ApplyChangeRequest,
    ChangeRequestListQuery,
    CreateChangeRequest,
    ReviewChangeRequest,
    ReviewQuery,
    SubmitChangeRequest,
)
from control_plane.routes.devcycle.models import (
    FeatureStatus,
    UpdateConfiguration,
    UpdateFeature,
)
from control_plane.store import new_id, now_iso

router = dv_router("devcycle-change-requests")

BASE = "/v2/projects/{project}/features/{feature}/change-requests"
OPEN = ("draft", "pending", "approved", "rejected")


@dataclass(frozen=True)
class Planned:
    """A stored ``PATCH`` understood: the write it runs and the feature it changes."""

    operation: str
    project_ref: str
    feature_ref: str
    make: Callable[[str | None], Callable[[Write], Any]]


# The feature PATCH routes a change request may stand for, by what follows the feature in the
# path: the operation name, the direct route's body model and its write.
_FEATURE_WRITES: dict[
    tuple[str, ...], tuple[str, Any, Callable[[str, str, str | None, Any], Callable[[Write], Any]]]
] = {
    (): ("featureUpdate", UpdateFeature, update_feature_change),
    ("status",): ("featureStatusUpdate", FeatureStatus, feature_status_change),
    ("static-configuration",): ("featureUpdate", UpdateStaticConfiguration, static_configuration_change),
}


def plan(path: str, body: dict[str, Any]) -> Planned:
    """The write a change request's ``path`` and ``body`` stand for; 400 for anything else. The
    body is validated with the direct route's model (again at apply: the rules may have moved)."""
    split = urlsplit(path)
    parts = [unquote(p) for p in split.path.strip("/").split("/")]
    query = parse_qs(split.query)
    if len(parts) < 5 or parts[0] not in ("v1", "v2") or parts[1] != "projects" or parts[3] != "features":
        raise validation(
            "path must be a feature PATCH route: /v1|v2/projects/{project}/features/{feature}[/status|"
            "/static-configuration|/configurations?environment=...]",
            "path",
            "unsupported_path",
        )
    project_ref, feature_ref, rest = parts[2], parts[4], parts[5:]
    # v1 and v2 take the same body and run the same write.
    if (feature_write := _FEATURE_WRITES.get(tuple(rest))) is not None:
        operation, model, change = feature_write
        fields = parse_model(model, body, "body.")
        return Planned(operation, project_ref, feature_ref, lambda org: change(project_ref, feature_ref, org, fields))
    if rest == ["configurations"] and query.get("environment") and parts[0] == "v1":
        env = query["environment"][0]
        config = parse_model(UpdateConfiguration, body, "body.")
        return Planned(
            "featureUpdate",
            project_ref,
            feature_ref,
            lambda org: configuration_change(project_ref, feature_ref, env, org, config),
        )
    raise validation("this path cannot be proposed as a change request", "path", "unsupported_path")


def _view(row: Row, feature_row: Row | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "_id": row["id"],
        "_project": row["project_id"],
        "_baseFeatureSnapshot": row["base_snapshot"],
        "_feature": row["feature_id"],
        "status": row["status"],
        "changes": [{"path": row["path"], "method": row["method"], "body": loads(row["body"], {})}],
        "operation": row["operation"],
        "description": row["description"],
        "reviewers": {"users": loads(row["reviewers"], [])},
        "reviews": loads(row["reviews"], []),
        "_createdBy": row["created_by"],
        "_updatedBy": row["updated_by"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
    if feature_row is not None:
        out["feature"] = {"key": feature_row["key"], "name": feature_row["name"], "id": feature_row["id"]}
    return out


def _change_request(db: Connection, feature_id: str, ident: str) -> Row:
    row: Row | None = db.execute(
        "SELECT * FROM change_requests WHERE id = ? AND feature_id = ?", (ident, feature_id)
    ).fetchone()
    if row is None:
        raise not_found("change request")
    return row


def _set(w: Write, cr_id: str, **columns: Any) -> None:
    columns.update(updated_by=w.principal.user_id, updated_at=now_iso())
    assignments = ", ".join(f"{name} = ?" for name in columns)
    w.db.execute(f"UPDATE change_requests SET {assignments} WHERE id = ?", (*columns.values(), cr_id))


def _audit(w: Write, access: authz.ProjectAccess, feature_key: str, cr_id: str, action: str) -> None:
    w.audit(
        f"change_request.{action}",
        f"feature:{feature_key}/change_request:{cr_id}",
        organisation_id=access.organisation_id,
        project_id=access.id,
    )


def _expect(row: Row, *statuses: str) -> None:
    if row["status"] not in statuses:
        raise conflict(f"the change request is {row['status']}, not {' or '.join(statuses)}")


def _author_or_publisher(w: Write, access: authz.ProjectAccess, row: Row) -> None:
    if row["created_by"] != w.principal.user_id and authz.RANK[access.role] < authz.RANK[approval.REVIEWER_ROLE]:
        raise forbidden("only the author or a publisher may do this")


def _apply(w: Write, ctx: Ctx, access: authz.ProjectAccess, row: Row) -> None:
    """Run the stored change through the direct route's write; 409 if the feature moved."""
    # A content digest of the feature's definition, not a secret: a plain comparison (allowed
    # in tests/security/test_constant_time.py).
    if approval.feature_digest(w.db, row["feature_id"]) != row["base_snapshot"]:
        raise conflict("the feature changed since this change request was created; create a new one")
    planned = plan(row["path"], loads(row["body"], {}))
    w.change_request = row["id"]
    try:
        planned.make(ctx.header("x-organisation"))(w)
    finally:
        w.change_request = None
    _set(w, row["id"], status="applied")
    w.audit(
        "change_request.apply",
        f"change_request:{row['id']}",
        organisation_id=access.organisation_id,
        project_id=access.id,
    )


@router.route(
    "POST",
    BASE,
    summary="Create a feature change request (a proposed PATCH, applied once approved)",
    body=CreateChangeRequest,
    status=201,
    headers=ORG,
    responses=(409, 412),
)
async def create_change_request(ctx: Ctx) -> Any:
    body: CreateChangeRequest = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        if not approval.enabled(w.db, access.id):
            raise ApiError(412, "the project's approval workflow is not enabled: write the change directly")
        planned = plan(body.path, body.body)
        target = authz.project_by_key(w.db, w.principal, planned.project_ref, "write", ctx.header("x-organisation"))
        if target.id != access.id or feature(w.db, access.id, planned.feature_ref)["id"] != f["id"]:
            raise validation("path must name this change request's project and feature", "path", "mismatch")
        cr_id, now = new_id(), now_iso()
        w.db.execute(
            "INSERT INTO change_requests (id, project_id, feature_id, status, operation, path, method, body,"
            " base_snapshot, created_by, updated_by, created_at, updated_at)"
            " VALUES (?, ?, ?, 'draft', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                cr_id,
                access.id,
                f["id"],
                planned.operation,
                body.path,
                body.method,
                dumps(body.body),
                approval.feature_digest(w.db, f["id"]),
                w.principal.user_id,
                w.principal.user_id,
                now,
                now,
            ),
        )
        _audit(w, access, f["key"], cr_id, "create")
        return _view(_change_request(w.db, f["id"], cr_id))

    return ctx.commit(change, status=201)


@router.route("GET", BASE, summary="A feature's open change requests (draft, pending, approved)", headers=ORG)
async def list_feature_change_requests(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, ctx.path("feature"))
        rows = db.execute(
            "SELECT * FROM change_requests WHERE feature_id = ? AND status IN ('draft', 'pending', 'approved')"
            " ORDER BY created_at DESC, id",
            (f["id"],),
        ).fetchall()
    return [_view(r) for r in rows]


@router.route("GET", BASE + "/latest", summary="A feature's latest change request that is not a draft", headers=ORG)
async def latest_change_request(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, ctx.path("feature"))
        row = db.execute(
            "SELECT * FROM change_requests WHERE feature_id = ? AND status != 'draft'"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (f["id"],),
        ).fetchone()
    if row is None:
        raise not_found("change request")
    return _view(row)


@router.route("GET", BASE + "/{id}", summary="Get a feature change request", headers=ORG)
async def get_change_request(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, ctx.path("feature"))
        return _view(_change_request(db, f["id"], ctx.path("id")))


@router.route(
    "PATCH",
    BASE + "/{id}/submit",
    summary="Submit a change request for review by publishers (author or publisher)",
    body=SubmitChangeRequest,
    headers=ORG,
    responses=(409,),
)
async def submit_change_request(ctx: Ctx) -> Any:
    body: SubmitChangeRequest = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        row = _change_request(w.db, f["id"], ctx.path("id"))
        _author_or_publisher(w, access, row)
        _expect(row, "draft", "rejected")
        reviewers = list(
            dict.fromkeys(body.reviewers or approval.workflow(w.db, access.id).get("defaultReviewers", []))
        )
        if not reviewers:
            raise validation("name at least one reviewer (or set defaultReviewers)", "reviewers", "required")
        refused = approval.reviewers_allowed(w.db, access.organisation_id, reviewers)
        if refused:
            raise validation(
                f"not a publisher or owner of this organisation: {refused[0]}", "reviewers", "not_reviewer"
            )
        _set(w, row["id"], status="pending", description=body.description, reviewers=dumps(reviewers))
        _audit(w, access, f["key"], row["id"], "submit")
        return _view(_change_request(w.db, f["id"], row["id"]))

    return ctx.commit(change)


@router.route(
    "PATCH",
    BASE + "/{id}/review",
    summary="Approve or reject a pending change request (publishers; ?apply=true also applies it)",
    body=ReviewChangeRequest,
    query=ReviewQuery,
    headers=ORG,
    responses=(409,),
)
async def review_change_request(ctx: Ctx) -> Any:
    body: ReviewChangeRequest = ctx.body
    query: ReviewQuery = ctx.query

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "read")
        f = feature(w.db, access.id, ctx.path("feature"))
        row = _change_request(w.db, f["id"], ctx.path("id"))
        approval.check_reviewer(w.db, w.principal, access.id, row["created_by"])
        _expect(row, "pending")
        review = {
            "_createdBy": w.principal.user_id,
            "action": body.action,
            "comment": body.comment,
            "createdAt": now_iso(),
        }
        _set(w, row["id"], status=body.action, reviews=dumps([*loads(row["reviews"], []), review]))
        _audit(w, access, f["key"], row["id"], body.action)
        if query.apply and body.action == "approved":
            _apply(w, ctx, access, _change_request(w.db, f["id"], row["id"]))
        return _view(_change_request(w.db, f["id"], row["id"]))

    return ctx.commit(change)


@router.route(
    "PATCH",
    BASE + "/{id}/apply",
    summary="Apply an approved change request (author or publisher)",
    body=ApplyChangeRequest,
    headers=ORG,
    responses=(409,),
)
async def apply_change_request(ctx: Ctx) -> Any:
    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        row = _change_request(w.db, f["id"], ctx.path("id"))
        _author_or_publisher(w, access, row)
        _expect(row, "approved")
        _apply(w, ctx, access, row)
        return _view(_change_request(w.db, f["id"], row["id"]))

    return ctx.commit(change)


@router.route("PATCH", BASE + "/{id}/cancel", summary="Cancel an open change request", headers=ORG, responses=(409,))
async def cancel_change_request(ctx: Ctx) -> Any:
    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        row = _change_request(w.db, f["id"], ctx.path("id"))
        _author_or_publisher(w, access, row)
        _expect(row, *OPEN)
        _set(w, row["id"], status="cancelled")
        _audit(w, access, f["key"], row["id"], "cancel")
        return _view(_change_request(w.db, f["id"], row["id"]))

    return ctx.commit(change)


@router.route(
    "GET",
    "/v2/projects/{project}/change-requests",
    summary="The project's feature change requests",
    query=ChangeRequestListQuery,
    headers=ORG,
)
async def list_project_change_requests(ctx: Ctx) -> Any:
    query: ChangeRequestListQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        where, params = ["cr.project_id = ?"], [access.id]
        if query.status:
            where.append("cr.status = ?")
            params.append(query.status)
        if query.reviewer:
            # reviewers is a JSON array of ids: the quoted id, LIKE-escaped.
            where.append("cr.reviewers LIKE ? ESCAPE '\\'")
            params.append("%" + re.sub(r"([\\%_])", r"\\\1", dumps(query.reviewer)) + "%")
        rows = list_rows(
            db,
            "SELECT cr.*, f.key AS f_key, f.name AS f_name FROM change_requests cr"
            " JOIN features f ON f.id = cr.feature_id",
            where,
            params,
            query,
            alias="cr",
            search_columns=("description",),
            sort_columns={"name": "f.name", "key": "f.key"},
            created_by="cr.created_by",
        )
    out = []
    for r in rows:
        view = _view(r)
        del view["changes"], view["_baseFeatureSnapshot"]
        view["feature"] = {"key": r["f_key"], "name": r["f_name"], "id": r["feature_id"]}
        out.append(view)
    return out
