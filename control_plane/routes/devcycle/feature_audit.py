"""A feature's audit log (``GET /v1/projects/{project}/features/{feature}/audit``) and its
project's (``GET /v1/projects/{project}/audit``, flagedge's own), read from the audit entries
every write appends (``audit_log``, :meth:`control_plane.http.Write.audit`).

A feature's entries are those of its project whose target is ``feature:<key>`` or below it
(``feature:<key>/environment:<env>``, ``feature:<key>/variation:<v>``); an entry is shown as
DevCycle's ``{date, a0_user, changes}`` with one change: what was done, to what, why. History
follows the key: entries written under a feature's earlier key stay with that key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from control_plane.dialect import Connection, Row
from control_plane.http import Ctx
from control_plane.routes.devcycle.common import ORG, ListQuery, dv_router, feature, iso_date, loads, project

router = dv_router("devcycle-features")


class AuditQuery(ListQuery):
    sortBy: Literal["createdAt", "updatedAt", "name", "key", "createdBy", "propertyKey"] = "createdAt"
    environment: str | None = Field(default=None, min_length=1, max_length=100)
    a0_user: str | None = Field(default=None, min_length=1, max_length=200)
    startDate: str | None = Field(default=None, max_length=40)
    endDate: str | None = Field(default=None, max_length=40)


def _target_clause(key: str, environment: str | None) -> tuple[str, list[Any]]:
    if environment:
        return "target = ?", [f"feature:{key}/environment:{environment}"]
    # substr, not LIKE: a key may hold "_" (LIKE's wildcard).
    prefix = f"feature:{key}/"
    return "(target = ? OR substr(target, 1, ?) = ?)", [f"feature:{key}", len(prefix), prefix]


def entry_view(row: Row) -> dict[str, Any]:
    return {
        "date": row["at"],
        "a0_user": row["actor"],
        "changes": [
            {
                "action": row["action"],
                "target": row["target"],
                "changeReason": row["change_reason"],
                "details": loads(row["details"], {}),
            }
        ],
    }


def latest_entry(db: Connection, project_id: str, key: str) -> Row | None:
    clause, args = _target_clause(key, None)
    row: Row | None = db.execute(
        f"SELECT * FROM audit_log WHERE project_id = ? AND {clause} ORDER BY id DESC LIMIT 1", [project_id, *args]
    ).fetchone()
    return row


def latest_update(db: Connection, project_id: str, key: str) -> dict[str, Any] | None:
    """DevCycle's ``latestUpdate`` of a feature: its newest audit entry, or None."""
    row = latest_entry(db, project_id, key)
    return entry_view(row) if row is not None else None


def _entries(db: Connection, ctx: Ctx, project_id: str, clause: tuple[str, list[Any]] | None) -> list[Any]:
    """The project's entries (only those ``clause`` keeps), filtered and paged as ``AuditQuery`` says."""
    query: AuditQuery = ctx.query
    start = iso_date(query.startDate, "query.startDate") if query.startDate else None
    end = iso_date(query.endDate, "query.endDate") if query.endDate else None
    where, params = ["project_id = ?"], [project_id]
    if clause is not None:
        where.append(clause[0])
        params.extend(clause[1])
    if query.a0_user:
        where.append("actor = ?")
        params.append(query.a0_user)
    if start:
        where.append("at >= ?")
        params.append(start)
    if end:
        where.append("at <= ?")
        params.append(end)
    # Entries are appended in time order: the id orders them (every sortBy is the date here).
    order = "ASC" if query.sortOrder == "asc" else "DESC"
    rows = db.execute(
        f"SELECT * FROM audit_log WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ? OFFSET ?",
        [*params, query.perPage, (query.page - 1) * query.perPage],
    ).fetchall()
    return [entry_view(r) for r in rows]


@router.route(
    "GET",
    "/v1/projects/{project}/features/{feature}/audit",
    summary="Get the audit log of a feature",
    query=AuditQuery,
    headers=ORG,
)
async def feature_audit_log(ctx: Ctx) -> Any:
    query: AuditQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, ctx.path("feature"))
        return _entries(db, ctx, access.id, _target_clause(f["key"], query.environment))


@router.route(
    "GET",
    "/v1/projects/{project}/audit",
    summary="The project's audit log: every entry of its features, settings, webhooks and keys (flagedge)",
    query=AuditQuery,
    headers=ORG,
)
async def project_audit_log(ctx: Ctx) -> Any:
    query: AuditQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        # ?environment= keeps the entries of that environment (any feature's, and the environment's own).
        clause = None
        if query.environment:
            suffix = f"environment:{query.environment}"
            # substr from the end, not LIKE: a key may hold "_" (LIKE's wildcard).
            clause = ("(target = ? OR substr(target, length(target) - ?) = ?)", [suffix, len(suffix), "/" + suffix])
        return _entries(db, ctx, access.id, clause)
