"""Shared pieces of the DevCycle management API: list queries, look-ups, JSON bounds, settings
merges, feature bookkeeping, filters. Nothing here declares a route."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

import evaluator
from control_plane import authz
from control_plane.dialect import Connection, Row, contains, contains_pattern
from control_plane.errors import ApiError, not_found, validation
from control_plane.features_snapshot import config_filters
from control_plane.http import Ctx, Router, Write
from control_plane.models import Body
from control_plane.store import now_iso

ORG = ("x-organisation",)  # the header every DevCycle route takes


def dv_router(tag: str) -> Router:
    """A router of the DevCycle API: its errors answer in DevCycle's shape (DESIGN.md 5b)."""
    return Router(tag, shape="devcycle")


ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
MAX_JSON_DEPTH = 64
MAX_JSON_NODES = 20_000
MAX_LIST = 1000
MAX_STRING = 10_000
SortBy = Literal["createdAt", "updatedAt", "name", "key", "createdBy", "propertyKey"]
SORT_COLUMNS = {
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "name": "name",
    "key": "key",
    "createdBy": "created_by",
}


class Strict(BaseModel):
    """Nested request objects: unknown fields are rejected, strings are bounded, JSON types are
    taken as sent (no ``"yes"`` for a boolean, no number for a string)."""

    model_config = ConfigDict(extra="forbid", str_max_length=MAX_STRING, strict=True)


class DvBody(Body):
    """A DevCycle request body: :class:`Body` with strict JSON types."""

    model_config = ConfigDict(extra="forbid", str_max_length=MAX_STRING, strict=True)


def check_json(value: Any) -> Any:
    """Bound a free-form JSON value: depth, node count, string length, finite numbers."""
    count = 0

    def walk(v: Any, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_JSON_NODES:
            raise ValueError(f"more than {MAX_JSON_NODES} JSON values")
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(v, dict):
            for k, item in v.items():
                if len(k) > MAX_STRING:
                    raise ValueError("object key too long")
                walk(item, depth + 1)
        elif isinstance(v, list):
            for item in v:
                walk(item, depth + 1)
        elif isinstance(v, str):
            if len(v) > MAX_STRING:
                raise ValueError(f"string longer than {MAX_STRING} characters")
        elif isinstance(v, float) and not math.isfinite(v):
            raise ValueError("numbers must be finite")

    walk(value, 0)
    return value


Json = Annotated[Any, AfterValidator(check_json)]
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]
Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=100)]


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(text: str | None, default: Any = None) -> Any:
    return orjson.loads(text) if text else default


def iso_date(value: str, field: str) -> str:
    """An ISO 8601 date-time normalised to UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ``; 400 if invalid."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # An offset can move the date out of years 1..9999 (OverflowError).
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise validation("not an ISO 8601 date-time", field, "invalid_date") from None
    # strftime does not zero-pad years before 1000 ("1-01-01"), which fromisoformat then rejects.
    return f"{parsed.year:04d}-{parsed.strftime('%m-%dT%H:%M:%S')}.{parsed.microsecond // 1000:03d}Z"


def merge_settings(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` merged into ``base``, nested objects key by key (PATCH of project/environment settings)."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge_settings(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---------------------------------------------------------------------------------------------
# Lists


class ListQuery(BaseModel):
    """``page``/``perPage``/``sortBy``/``sortOrder``/``search``/``createdBy`` as DevCycle lists take."""

    page: int = Field(default=1, ge=1, le=1_000_000)
    perPage: int = Field(default=100, ge=1, le=1000)
    sortBy: SortBy = "createdAt"
    sortOrder: Literal["asc", "desc"] = "desc"
    search: str | None = Field(default=None, min_length=3, max_length=100)
    createdBy: str | None = Field(default=None, max_length=100)


def list_rows(
    db: Connection,
    select_from: str,
    where: list[str],
    params: list[Any],
    query: ListQuery,
    *,
    alias: str,
    search_columns: tuple[str, ...] = ("name", "key"),
    sort_columns: dict[str, str] | None = None,
    created_by: str | None = None,
) -> list[Row]:
    """One page of rows of ``select_from`` (a ``SELECT ... FROM ...`` whose main table is
    ``alias``) matching ``where``, searched and sorted as the query says; ties keep insertion order."""
    columns = {k: f"{alias}.{v}" for k, v in SORT_COLUMNS.items()}
    if created_by:
        columns["createdBy"] = created_by
    columns.update(sort_columns or {})
    column = columns.get(query.sortBy)
    if column is None:
        raise validation(f"cannot sort by {query.sortBy} here", "query.sortBy", "invalid_sort")
    clauses, args = list(where), list(params)
    if query.search:
        clauses.append("(" + " OR ".join(contains(f"{alias}.{c}") for c in search_columns) + ")")
        args += [contains_pattern(query.search)] * len(search_columns)
    if query.createdBy:
        clauses.append(f"{created_by or alias + '.created_by'} = ?")
        args.append(query.createdBy)
    order = "ASC" if query.sortOrder == "asc" else "DESC"
    sql = (
        f"{select_from} WHERE {' AND '.join(clauses) or '1 = 1'} "
        f"ORDER BY {column} {order}, {alias}.id {order} LIMIT ? OFFSET ?"
    )
    args += [query.perPage, (query.page - 1) * query.perPage]
    return list(db.execute(sql, args).fetchall())


# ---------------------------------------------------------------------------------------------
# Look-ups


def project(db: Connection, ctx: Ctx, needed: str) -> authz.ProjectAccess:
    """The ``{project}`` path parameter (key or id), through the caller's memberships."""
    return authz.project_by_key(db, ctx.principal, ctx.path("project"), needed, ctx.header("x-organisation"))


def caller_organisation(db: Connection, ctx: Ctx, needed: str) -> authz.OrgAccess:
    """The organisation a DevCycle route without a project acts in: the ``x-organisation``
    header, else the API key's organisation, else the caller's only one (400 if several)."""
    name = ctx.header("x-organisation")
    if not name:
        if ctx.principal.api_key_org:
            row = db.execute("SELECT name FROM organisations WHERE id = ?", (ctx.principal.api_key_org,)).fetchone()
            name = row["name"] if row else None
        else:
            rows = db.execute(
                "SELECT o.name FROM memberships m JOIN organisations o ON o.id = m.organisation_id WHERE m.user_id = ?",
                (ctx.principal.user_id,),
            ).fetchall()
            if len(rows) == 1:
                name = rows[0]["name"]
    if not name:
        raise ApiError(
            400,
            "x-organisation header is required when you belong to several organisations (or none)",
            details=[{"field": "x-organisation", "code": "required", "message": "header is required"}],
        )
    return authz.org_by_name(db, ctx.principal, name, needed)


def write_project(w: Write, ctx: Ctx, needed: str) -> authz.ProjectAccess:
    return authz.project_by_key(w.db, w.principal, ctx.path("project"), needed, ctx.header("x-organisation"))


def row_by_id_or_key(db: Connection, table: str, scope_column: str, scope: str, ident: str, what: str) -> Row:
    """A row of ``table`` within ``scope`` by id (preferred) or key; 404 when there is none."""
    row: Row | None = db.execute(
        f"SELECT * FROM {table} WHERE {scope_column} = ? AND (id = ? OR key = ?) ORDER BY id = ? DESC LIMIT 1",
        (scope, ident, ident, ident),
    ).fetchone()
    if row is None:
        raise not_found(what)
    return row


def environment(db: Connection, project_id: str, ident: str) -> Row:
    return row_by_id_or_key(db, "environments", "project_id", project_id, ident, "environment")


def key_taken(db: Connection, table: str, scope_column: str, scope: str, key: str, exclude: str = "") -> bool:
    sql = f"SELECT 1 FROM {table} WHERE {scope_column} = ? AND key = ? AND id != ?"
    return db.execute(sql, (scope, key, exclude)).fetchone() is not None


def feature(db: Connection, project_id: str, ident: str) -> Row:
    return row_by_id_or_key(db, "features", "project_id", project_id, ident, "feature")


def variation_id_of(db: Connection, feature_id: str, ident: str) -> str | None:
    row = db.execute(
        "SELECT id FROM variations WHERE feature_id = ? AND (id = ? OR key = ?) ORDER BY id = ? DESC LIMIT 1",
        (feature_id, ident, ident, ident),
    ).fetchone()
    return str(row["id"]) if row else None


# ---------------------------------------------------------------------------------------------
# Feature bookkeeping


def bump_feature(w: Write, feature_id: str) -> None:
    """What the feature serves changed: every configuration's targetingVersion goes up by one."""
    w.db.execute(
        "UPDATE feature_configurations SET targeting_version = targeting_version + 1, updated_at = ? "
        "WHERE feature_id = ?",
        (now_iso(), feature_id),
    )


def touch_feature(w: Write, feature_id: str) -> None:
    w.db.execute("UPDATE features SET updated_at = ? WHERE id = ?", (now_iso(), feature_id))


# ---------------------------------------------------------------------------------------------
# Filter trees (DevCycle audience filters, Reflag filters, JSON Logic nodes, mixed)

SUB_TYPES = (
    "user_id",
    "email",
    "ip",
    "country",
    "platform",
    "platformVersion",
    "appVersion",
    "deviceModel",
    "customData",
)
COMPARATORS = (
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "exist",
    "!exist",
    "contain",
    "!contain",
    "startWith",
    "!startWith",
    "endWith",
    "!endWith",
)
DATA_KEY_TYPES = ("String", "Boolean", "Number")
REFLAG_TYPES = ("group", "negation", "constant", "context", "rolloutPercentage", "jsonLogic")
MAX_FILTER_NODES = 5000


class FilterChecker:
    """Validates a filter tree with request paths and normalises it for storage.

    DevCycle nodes are checked here (the evaluator rechecks everything when the snapshot
    compiles); ``audienceMatch`` references (ids or keys) are resolved to audience ids.
    """

    def __init__(self, resolve_audience: Callable[[str], str | None]) -> None:
        self.resolve_audience = resolve_audience
        self.nodes = 0

    def check(self, node: Any, path: str, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_FILTER_NODES:
            raise validation(f"filter has more than {MAX_FILTER_NODES} nodes", path, "too_large")
        if depth > MAX_JSON_DEPTH:
            raise validation(f"filter nested deeper than {MAX_JSON_DEPTH} levels", path, "too_deep")
        if not isinstance(node, dict):
            raise validation("a filter must be an object", path, "invalid_filter")
        kind = node.get("type")
        if kind is None:
            return self._group(node, path, depth)
        if not isinstance(kind, str):
            raise validation("filter type must be a string", f"{path}.type", "invalid_filter")
        if kind in ("all", "optIn"):
            extra = set(node) - {"type"}
            if extra:
                raise validation(
                    f"unexpected field {sorted(extra)[0]!r}", f"{path}.{sorted(extra)[0]}", "invalid_filter"
                )
            return {"type": kind}
        if kind == "user":
            return self._user(node, path)
        if kind == "audienceMatch":
            return self._audience_match(node, path)
        if kind in REFLAG_TYPES:
            return self._reflag(node, path, depth)
        raise validation(f"unknown filter type {kind!r}", f"{path}.type", "invalid_filter")

    def _group(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        extra = set(node) - {"operator", "filters"}
        if extra:
            name = sorted(extra)[0]
            raise validation(f"unexpected field {name!r} (a filter needs a type)", f"{path}.{name}", "invalid_filter")
        operator = node.get("operator", "and")
        if operator not in ("and", "or"):
            raise validation('operator must be "and" or "or"', f"{path}.operator", "invalid_filter")
        children = node.get("filters", [])
        if not isinstance(children, list) or len(children) > MAX_LIST:
            raise validation(f"filters must be an array of at most {MAX_LIST}", f"{path}.filters", "invalid_filter")
        return {
            "operator": operator,
            "filters": [self.check(c, f"{path}.filters[{i}]", depth + 1) for i, c in enumerate(children)],
        }

    def _user(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        allowed = {"type", "subType", "comparator", "values", "dataKey", "dataKeyType"}
        extra = set(node) - allowed
        if extra:
            name = sorted(extra)[0]
            raise validation(f"unexpected field {name!r}", f"{path}.{name}", "invalid_filter")
        sub_type = node.get("subType")
        if sub_type not in SUB_TYPES:
            raise validation(f"subType must be one of {', '.join(SUB_TYPES)}", f"{path}.subType", "invalid_filter")
        comparator = node.get("comparator")
        if comparator not in COMPARATORS:
            raise validation(
                f"comparator must be one of {' '.join(COMPARATORS)}", f"{path}.comparator", "invalid_filter"
            )
        out: dict[str, Any] = {"type": "user", "subType": sub_type, "comparator": comparator}
        values = node.get("values")
        if values is None:
            if comparator not in ("exist", "!exist"):
                raise validation(f"comparator {comparator} needs values", f"{path}.values", "required")
        else:
            if not isinstance(values, list) or len(values) > MAX_LIST:
                raise validation(f"values must be an array of at most {MAX_LIST}", f"{path}.values", "invalid_filter")
            for i, v in enumerate(values):
                ok = (
                    (isinstance(v, str) and len(v) <= 1000)
                    or isinstance(v, bool)
                    or (isinstance(v, int | float) and math.isfinite(v))
                )
                if not ok:
                    raise validation(
                        "values must be strings, numbers or booleans", f"{path}.values[{i}]", "invalid_filter"
                    )
            out["values"] = values
        if sub_type == "customData":
            data_key = node.get("dataKey")
            if not isinstance(data_key, str) or not 1 <= len(data_key) <= 200:
                raise validation("customData filters need a dataKey", f"{path}.dataKey", "required")
            out["dataKey"] = data_key
            data_key_type = node.get("dataKeyType")
            if data_key_type is not None:
                if data_key_type not in DATA_KEY_TYPES:
                    raise validation(
                        "dataKeyType must be String, Boolean or Number", f"{path}.dataKeyType", "invalid_filter"
                    )
                out["dataKeyType"] = data_key_type
        elif "dataKey" in node or "dataKeyType" in node:
            raise validation("dataKey is only for customData filters", f"{path}.dataKey", "invalid_filter")
        return out

    def _audience_match(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        extra = set(node) - {"type", "comparator", "_audiences"}
        if extra:
            name = sorted(extra)[0]
            raise validation(f"unexpected field {name!r}", f"{path}.{name}", "invalid_filter")
        comparator = node.get("comparator", "=")
        if comparator not in ("=", "!="):
            raise validation('audienceMatch comparator must be "=" or "!="', f"{path}.comparator", "invalid_filter")
        refs = node.get("_audiences")
        if not isinstance(refs, list) or not refs or len(refs) > 100:
            raise validation(
                "_audiences must be a non-empty array of audience ids or keys", f"{path}._audiences", "invalid_filter"
            )
        ids = []
        for i, ref in enumerate(refs):
            resolved = self.resolve_audience(ref) if isinstance(ref, str) and len(ref) <= 100 else None
            if resolved is None:
                raise validation(f"no audience {ref!r} in this project", f"{path}._audiences[{i}]", "unknown_audience")
            ids.append(resolved)
        return {"type": "audienceMatch", "comparator": comparator, "_audiences": ids}

    def _reflag(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        # Reflag and JSON Logic nodes are checked by the evaluator; only their children are
        # walked here so that DevCycle nodes inside them are checked and normalised too.
        kind = node["type"]
        if kind == "group" and isinstance(node.get("filters"), list):
            children = node["filters"]
            if len(children) > MAX_LIST:
                raise validation(f"filters must be an array of at most {MAX_LIST}", f"{path}.filters", "invalid_filter")
            return {
                **node,
                "filters": [self.check(c, f"{path}.filters[{i}]", depth + 1) for i, c in enumerate(children)],
            }
        if kind == "negation" and isinstance(node.get("filter"), dict):
            return {**node, "filter": self.check(node["filter"], f"{path}.filter", depth + 1)}
        if kind == "jsonLogic":
            _trial_evaluation(node.get("rule"), f"{path}.rule")
        return node


def _trial_evaluation(rule: Any, path: str) -> None:
    """Refuse a JSON Logic rule that exhausts the evaluator's budget on an empty context (a bomb
    such as a ``map`` of ``map`` over big literal arrays): every SDK request whose context lacks
    what the rule reads would spend the whole budget on it, and then not match. Other errors are
    the snapshot compile's to report, with its path."""
    try:
        evaluator.jsonlogic_apply(rule, {})
    except evaluator.BudgetExceededError as e:
        raise validation(f"rule exceeds the evaluation budget ({e})", path, "too_expensive") from None
    except (evaluator.EvaluatorError, ValueError, TypeError):
        pass


def project_filter_trees(db: Connection, project_id: str) -> list[Any]:
    """Every filter tree of the project: audiences and configurations."""
    trees = [
        loads(r["filters"], {}) for r in db.execute("SELECT filters FROM audiences WHERE project_id = ?", (project_id,))
    ]
    rows = db.execute(
        "SELECT c.targets, c.reflag FROM feature_configurations c JOIN features f ON f.id = c.feature_id "
        "WHERE f.project_id = ?",
        (project_id,),
    )
    for r in rows:
        trees += config_filters(loads(r["targets"], []), loads(r["reflag"]))
    return trees


def audience_resolver(db: Connection, project_id: str) -> Callable[[str], str | None]:
    def resolve(ref: str) -> str | None:
        row = db.execute(
            "SELECT id FROM audiences WHERE project_id = ? AND (id = ? OR key = ?) ORDER BY id = ? DESC LIMIT 1",
            (project_id, ref, ref, ref),
        ).fetchone()
        return str(row["id"]) if row else None

    return resolve


def rule_error(path: str, reason: str, field: str | None = None) -> ApiError:
    return ApiError(
        400,
        f"targeting does not compile: {reason}",
        details=[{"field": field or path, "code": "invalid_rule", "message": reason}],
    )
