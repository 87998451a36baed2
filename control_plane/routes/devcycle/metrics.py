"""DevCycle metrics, metric associations and results (``/v1/projects/{project}/metrics…``,
``…/metric-associations``, ``…/test-metric-results``, ``…/results/…``) at the paths of DevCycle's
API (``@devcycle/cli``'s generated client). Results are computed on request from what the
intake stored (``control_plane.metric_results``); ``cached`` is always false."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.responses import Response

from control_plane.dialect import Connection, Row
from control_plane.errors import conflict, not_found, validation
from control_plane.http import Ctx, Write
from control_plane.metric_results import evaluation_series, iso_ms, metric_result, unique_user_series
from control_plane.models import KEY_PATTERN
from control_plane.routes.devcycle.common import (
    ID_PATTERN,
    ORG,
    DvBody,
    ListQuery,
    dv_router,
    environment,
    feature,
    iso_date,
    key_taken,
    list_rows,
    project,
    row_by_id_or_key,
    write_project,
)
from control_plane.routes.devcycle.views import feature_view
from control_plane.store import new_id, now_iso

router = dv_router("devcycle-metrics")

Dimension = Literal[
    "COUNT_PER_UNIQUE_USER",
    "COUNT_PER_VARIABLE_EVALUATION",
    "SUM_PER_UNIQUE_USER",
    "AVERAGE_PER_UNIQUE_USER",
    "TOTAL_AVERAGE",
    "TOTAL_SUM",
]
Optimize = Literal["increase", "decrease"]
Period = Literal["day", "hour", "month"]
SdkType = Literal["client", "server", "mobile", "api"]


class CreateMetric(DvBody):
    name: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    event: str = Field(min_length=1, max_length=200)
    dimension: Dimension
    optimize: Optimize


class UpdateMetric(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    event: str | None = Field(default=None, min_length=1, max_length=200)
    dimension: Dimension | None = None
    optimize: Optimize | None = None


class MetricListQuery(ListQuery):
    dimension: Dimension | None = None


class Association(DvBody):
    metric: str = Field(pattern=ID_PATTERN)
    feature: str = Field(pattern=ID_PATTERN)


class AssociationQuery(BaseModel):
    metric: str | None = Field(default=None, pattern=ID_PATTERN)
    feature: str | None = Field(default=None, pattern=ID_PATTERN)


class ResultsQuery(BaseModel):
    feature: str = Field(pattern=ID_PATTERN)
    environment: str | None = Field(default=None, pattern=ID_PATTERN)
    startDate: str = Field(max_length=64)
    endDate: str = Field(max_length=64)


class TestResultsQuery(ResultsQuery):
    control: str = Field(pattern=ID_PATTERN)
    optimize: Optimize
    event: str = Field(min_length=1, max_length=200)
    dimension: Dimension


class EvaluationsQuery(BaseModel):
    # Epoch milliseconds as DevCycle's dashboard sends them (seconds are taken too: any value
    # below 10^11 is read as seconds).
    startDate: float | None = Field(default=None, ge=0, le=1e14)
    endDate: float | None = Field(default=None, ge=0, le=1e14)
    environment: str | None = Field(default=None, pattern=ID_PATTERN)
    period: Period = "hour"
    sdkType: SdkType | None = None
    platform: str | None = Field(default=None, max_length=100)
    variable: str | None = Field(default=None, max_length=100)


def metric_view(r: Row) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": r["name"],
        "key": r["key"],
        "_id": r["id"],
        "_project": r["project_id"],
        "source": r["source"],
        "event": r["event"],
        "dimension": r["dimension"],
        "optimize": r["optimize"],
        "createdAt": r["created_at"],
        "updatedAt": r["updated_at"],
    }
    if r["description"]:
        out["description"] = r["description"]
    return out


def _metric(db: Connection, project_id: str, ident: str) -> Row:
    return row_by_id_or_key(db, "metrics", "project_id", project_id, ident, "metric")


@router.route(
    "POST",
    "/v1/projects/{project}/metrics",
    summary="Create a metric",
    body=CreateMetric,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_metric(ctx: Ctx) -> Any:
    body: CreateMetric = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        if key_taken(w.db, "metrics", "project_id", access.id, body.key):
            raise conflict(f"a metric with key {body.key!r} already exists in this project")
        now, metric_id = now_iso(), new_id()
        w.db.execute(
            "INSERT INTO metrics (id, project_id, key, name, description, event, dimension, optimize, created_by,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                metric_id,
                access.id,
                body.key,
                body.name,
                body.description or "",
                body.event,
                body.dimension,
                body.optimize,
                w.principal.user_id,
                now,
                now,
            ),
        )
        w.audit("metric.create", f"metric:{body.key}", organisation_id=access.organisation_id, project_id=access.id)
        return metric_view(w.db.execute("SELECT * FROM metrics WHERE id = ?", (metric_id,)).fetchone())

    return ctx.commit(change, status=201)


@router.route("GET", "/v1/projects/{project}/metrics", summary="List metrics", query=MetricListQuery, headers=ORG)
async def list_metrics(ctx: Ctx) -> Any:
    q: MetricListQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        where, params = ["m.project_id = ?"], [access.id]
        if q.dimension:
            where.append("m.dimension = ?")
            params.append(q.dimension)
        rows = list_rows(db, "SELECT m.* FROM metrics m", where, params, q, alias="m")
        return [metric_view(r) for r in rows]


@router.route("GET", "/v1/projects/{project}/metrics/{key}", summary="Get a metric by id or key", headers=ORG)
async def get_metric(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return metric_view(_metric(db, access.id, ctx.path("key")))


@router.route(
    "PATCH",
    "/v1/projects/{project}/metrics/{key}",
    summary="Update a metric",
    body=UpdateMetric,
    headers=ORG,
    responses=(409,),
)
async def update_metric(ctx: Ctx) -> Any:
    body: UpdateMetric = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        m = _metric(w.db, access.id, ctx.path("key"))
        if body.key is not None and key_taken(w.db, "metrics", "project_id", access.id, body.key, m["id"]):
            raise conflict(f"a metric with key {body.key!r} already exists in this project")
        w.db.execute(
            "UPDATE metrics SET key = ?, name = ?, description = ?, event = ?, dimension = ?, optimize = ?,"
            " updated_at = ? WHERE id = ?",
            (
                body.key or m["key"],
                body.name or m["name"],
                m["description"] if body.description is None else body.description,
                body.event or m["event"],
                body.dimension or m["dimension"],
                body.optimize or m["optimize"],
                now_iso(),
                m["id"],
            ),
        )
        w.audit("metric.update", f"metric:{m['key']}", organisation_id=access.organisation_id, project_id=access.id)
        return metric_view(w.db.execute("SELECT * FROM metrics WHERE id = ?", (m["id"],)).fetchone())

    return ctx.commit(change)


@router.route(
    "DELETE",
    "/v1/projects/{project}/metrics/{key}",
    summary="Delete a metric and its associations",
    status=204,
    headers=ORG,
)
async def delete_metric(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "write")
        m = _metric(w.db, access.id, ctx.path("key"))
        w.db.execute("DELETE FROM metric_associations WHERE metric_id = ?", (m["id"],))
        w.db.execute("DELETE FROM metrics WHERE id = ?", (m["id"],))
        w.audit("metric.delete", f"metric:{m['key']}", organisation_id=access.organisation_id, project_id=access.id)

    ctx.commit(change, status=204)
    return Response(status_code=204)


def _range(q: ResultsQuery) -> tuple[str, str]:
    start, end = iso_date(q.startDate, "query.startDate"), iso_date(q.endDate, "query.endDate")
    if start > end:
        raise validation("startDate must not be after endDate", "query.startDate", "invalid_range")
    return start, end


def _environment_ids(db: Connection, project_id: str, ident: str | None) -> list[str]:
    if ident is not None:
        return [str(environment(db, project_id, ident)["id"])]
    return [r["id"] for r in db.execute("SELECT id FROM environments WHERE project_id = ?", (project_id,))]


def _control_key(db: Connection, f: Row, given: str | None) -> str | None:
    ident = given or f["control_variation"]
    if not ident:
        return None
    row = db.execute(
        "SELECT key FROM variations WHERE feature_id = ? AND (id = ? OR key = ?)", (f["id"], ident, ident)
    ).fetchone()
    if row is None:
        raise validation(f"feature {f['key']!r} has no variation {ident!r}", "query.control", "not_found")
    return str(row["key"])


@router.route(
    "GET",
    "/v1/projects/{project}/metrics/{metric}/results",
    summary="A metric's results for a feature",
    query=ResultsQuery,
    headers=ORG,
)
async def metric_results(ctx: Ctx) -> Any:
    q: ResultsQuery = ctx.query
    start, end = _range(q)
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        m = _metric(db, access.id, ctx.path("metric"))
        f = feature(db, access.id, q.feature)
        return metric_result(
            db,
            f,
            _environment_ids(db, access.id, q.environment),
            event=m["event"],
            dimension=m["dimension"],
            optimize=m["optimize"],
            control=_control_key(db, f, None),
            start=start,
            end=end,
        )


@router.route(
    "GET",
    "/v1/projects/{project}/test-metric-results",
    summary="Results of an unsaved metric definition",
    query=TestResultsQuery,
    headers=ORG,
)
async def test_metric_results(ctx: Ctx) -> Any:
    q: TestResultsQuery = ctx.query
    start, end = _range(q)
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, q.feature)
        return metric_result(
            db,
            f,
            _environment_ids(db, access.id, q.environment),
            event=q.event,
            dimension=q.dimension,
            optimize=q.optimize,
            control=_control_key(db, f, q.control),
            start=start,
            end=end,
        )


def _association_view(db: Connection, r: Row) -> dict[str, Any]:
    m = db.execute("SELECT * FROM metrics WHERE id = ?", (r["metric_id"],)).fetchone()
    return {
        "_project": r["project_id"],
        "feature": feature_view(db, r["feature_id"]),
        "metric": metric_view(m),
        "createdAt": r["created_at"],
    }


@router.route(
    "GET",
    "/v1/projects/{project}/metric-associations",
    summary="List metric associations",
    query=AssociationQuery,
    headers=ORG,
)
async def list_associations(ctx: Ctx) -> Any:
    q: AssociationQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        sql, args = "SELECT * FROM metric_associations WHERE project_id = ?", [access.id]
        if q.metric:
            sql += " AND metric_id = ?"
            args.append(_metric(db, access.id, q.metric)["id"])
        if q.feature:
            sql += " AND feature_id = ?"
            args.append(feature(db, access.id, q.feature)["id"])
        return [_association_view(db, r) for r in db.execute(sql + " ORDER BY created_at", args).fetchall()]


@router.route(
    "POST",
    "/v1/projects/{project}/metric-associations",
    summary="Associate a metric with a feature",
    body=Association,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_association(ctx: Ctx) -> Any:
    body: Association = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        m, f = _metric(w.db, access.id, body.metric), feature(w.db, access.id, body.feature)
        inserted = w.db.execute(
            "INSERT INTO metric_associations (project_id, metric_id, feature_id, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (metric_id, feature_id) DO NOTHING RETURNING created_at",
            (access.id, m["id"], f["id"], now_iso()),
        ).fetchone()
        if inserted is None:
            raise conflict(f"metric {m['key']!r} is already associated with feature {f['key']!r}")
        w.audit(
            "metric.associate",
            f"metric:{m['key']}/feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        row = w.db.execute(
            "SELECT * FROM metric_associations WHERE metric_id = ? AND feature_id = ?", (m["id"], f["id"])
        ).fetchone()
        return _association_view(w.db, row)

    return ctx.commit(change, status=201)


@router.route(
    "DELETE",
    "/v1/projects/{project}/metric-associations",
    summary="Remove a metric association",
    body=Association,
    status=204,
    headers=ORG,
)
async def delete_association(ctx: Ctx) -> Any:
    body: Association = ctx.body

    def change(w: Write) -> None:
        access = write_project(w, ctx, "write")
        m, f = _metric(w.db, access.id, body.metric), feature(w.db, access.id, body.feature)
        gone = w.db.execute(
            "DELETE FROM metric_associations WHERE metric_id = ? AND feature_id = ? RETURNING metric_id",
            (m["id"], f["id"]),
        ).fetchone()
        if gone is None:
            raise not_found("metric association")
        w.audit(
            "metric.dissociate",
            f"metric:{m['key']}/feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )

    ctx.commit(change, status=204)
    return Response(status_code=204)


def _ms_range(q: EvaluationsQuery) -> tuple[str, str]:
    def ms(v: float | None, default: float) -> float:
        if v is None:
            return default
        return v * 1000 if v < 1e11 else v

    now = datetime.now(UTC).timestamp() * 1000
    start, end = ms(q.startDate, now - 7 * 86_400_000), ms(q.endDate, now)
    if start > end:
        raise validation("startDate must not be after endDate", "query.startDate", "invalid_range")
    return iso_ms(start), iso_ms(end)


def _evaluations(ctx: Ctx, *, per_feature: bool, unique: bool) -> dict[str, Any]:
    q: EvaluationsQuery = ctx.query
    start, end = _ms_range(q)
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        envs = _environment_ids(db, access.id, q.environment)
        if unique and not per_feature:
            series = unique_user_series(db, envs, start=start, end=end, period=q.period)
        else:
            key = feature(db, access.id, ctx.path("feature"))["key"] if per_feature else None
            series = evaluation_series(
                db, envs, feature_key=key, start=start, end=end, period=q.period, sdk_type=q.sdkType
            )
        return {"result": {"evaluations": series}, "cached": False, "updatedAt": now_iso()}


@router.route(
    "GET",
    "/v1/projects/{project}/features/{feature}/results/evaluations",
    summary="Evaluations per period of a feature, per variation",
    query=EvaluationsQuery,
    headers=ORG,
)
async def feature_evaluations(ctx: Ctx) -> Any:
    return _evaluations(ctx, per_feature=True, unique=True)


@router.route(
    "GET",
    "/v1/projects/{project}/features/{feature}/results/total-evaluations",
    summary="Total evaluations per period of a feature, per variation",
    query=EvaluationsQuery,
    headers=ORG,
)
async def feature_total_evaluations(ctx: Ctx) -> Any:
    return _evaluations(ctx, per_feature=True, unique=False)


@router.route(
    "GET",
    "/v1/projects/{project}/results/evaluations",
    summary="Unique users with evaluations per period",
    query=EvaluationsQuery,
    headers=ORG,
)
async def project_evaluations(ctx: Ctx) -> Any:
    return _evaluations(ctx, per_feature=False, unique=True)


@router.route(
    "GET",
    "/v1/projects/{project}/results/total-evaluations",
    summary="Total evaluations per period",
    query=EvaluationsQuery,
    headers=ORG,
)
async def project_total_evaluations(ctx: Ctx) -> Any:
    return _evaluations(ctx, per_feature=False, unique=False)
