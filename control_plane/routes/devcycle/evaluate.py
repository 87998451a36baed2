"""Try a context against a feature (``GET .../features/{feature}/evaluate?environment=&context=``).

The answer is what the edge would answer for that context now: the environment's snapshot
document is built from the saved state exactly as the publisher builds it and evaluated by the
evaluator (DevCycle targets by DevCycle's bucketing, Reflag rules as Reflag evaluates them), and
it says why: per target, whether the context is in the target's audience, the rollout's current
percentage, and whether the context qualified; the first target it qualified for served it.
Nothing is written; read access is enough. ``POST`` evaluates a draft: unsaved targeting, applied
and compiled as a save would be, inside a transaction that is rolled back.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from pydantic import BaseModel, Field

import evaluator
from control_plane.dialect import Connection, Row
from control_plane.errors import validation
from control_plane.features_snapshot import rollout_percentage, translate_filter
from control_plane.http import Ctx, Router, Write
from control_plane.routes.devcycle.common import (
    ORG,
    JsonObject,
    Strict,
    check_json,
    environment,
    feature,
    loads,
    project,
)
from control_plane.routes.devcycle.configurations import apply_configuration
from control_plane.routes.devcycle.models import ConfigurationFields, EnvironmentQuery
from control_plane.snapshots import build_environment_document, compile_environment

router = Router("devcycle-features")

# A context fits in a URL even percent-encoded: a character is up to 12 bytes there (4 UTF-8 bytes,
# each %XX), and 5000 of them stay under the 64 KiB that HTTP clients (httpx) send at most.
MAX_CONTEXT = 5000


class TryContext(BaseModel):
    environment: str | None = Field(default=None, min_length=1, max_length=100)
    context: str = Field(
        default="{}",
        max_length=MAX_CONTEXT,
        description='A Reflag-shape context as JSON: {"user": {"id", "email", "customData": {...}}, "company": {...}}',
    )


def _context(raw: str) -> dict[str, Any]:
    """The ``context`` query parameter: a JSON object (typed values, unlike flattened pairs)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise validation(f"context is not JSON: {e}", "query.context", "invalid_json") from None
    if not isinstance(value, dict):
        raise validation("context must be a JSON object", "query.context", "invalid_context")
    try:
        checked: dict[str, Any] = check_json(value)
    except ValueError as e:
        raise validation(str(e), "query.context", "invalid_context") from None
    return checked


def _audiences(db: Connection, project_id: str) -> dict[str, Any]:
    return {
        r["id"]: loads(r["filters"], {})
        for r in db.execute("SELECT id, filters FROM audiences WHERE project_id = ?", (project_id,))
    }


def _in_audience(key: str, tree: Any, context: dict[str, Any]) -> bool | None:
    """Whether ``context`` is in the filter tree alone (None if the tree cannot be evaluated alone)."""
    try:
        result = evaluator.reflag_evaluate(key, [{"value": True, "filter": tree}], context)
    except evaluator.EvaluatorError:
        return None
    return result["value"] is True


def _targets(
    key: str, targets: list[dict[str, Any]], audiences: dict[str, Any], context: dict[str, Any], qualified: list[bool]
) -> list[dict[str, Any]]:
    now = time.time() * 1000.0
    out = []
    for i, t in enumerate(targets):
        rollout = t.get("rollout")
        out.append(
            {
                "index": i,
                "_id": t.get("_id"),
                "name": t.get("name") or t.get("audience", {}).get("name"),
                "audienceMatch": _in_audience(
                    key, translate_filter(t.get("audience", {}).get("filters"), audiences), context
                ),
                "rolloutPercentage": rollout_percentage(rollout, now) if rollout else None,
                "qualified": qualified[i] if i < len(qualified) else False,
            }
        )
    return out


def _explain(
    status: str, served: dict[str, Any] | None, result: dict[str, Any] | None, rules: list[dict[str, Any]]
) -> str:
    if status != "active":
        return "The feature is off in this environment: every context gets the default (not enabled)."
    if result is None:
        return "The feature is not served in this environment (archived, or filtered out of the snapshot)."
    if served is not None:
        why = f"qualified for target {served['index'] + 1}"
        if served.get("name"):
            why += f" ({served['name']})"
        pct = served.get("rolloutPercentage")
        if pct is not None and pct < 1:
            why += f", inside its rollout of {pct * 100:.4g}%"
        variant = (result.get("config") or {}).get("key")
        return f"Enabled: {why}" + (f"; variation {variant!r}." if variant else ".")
    missed = [r for r in rules if r["audienceMatch"]]
    if missed:
        r = missed[0]
        return (
            f"Not enabled: in the audience of target {r['index'] + 1} but outside its rollout "
            f"({(r['rolloutPercentage'] or 0) * 100:.4g}% now)."
        )
    if result.get("missingContextFields"):
        return "Not enabled: no target matched; the context lacks " + ", ".join(result["missingContextFields"]) + "."
    return "Not enabled: the context is in no target's audience." if rules else "Not enabled: there are no targets."


def _answer(db: Connection, project_id: str, f: Row, env: Row, context: dict[str, Any], draft: bool) -> dict[str, Any]:
    """The evaluation of ``f`` in ``env`` for ``context`` from the state ``db`` holds."""
    row = db.execute(
        "SELECT status, targets, reflag, targeting_version FROM feature_configurations"
        " WHERE feature_id = ? AND environment_id = ?",
        (f["id"], env["id"]),
    ).fetchone()
    snapshot = compile_environment(db, env["id"])
    audiences = _audiences(db, project_id)
    # The document is rebuilt only to tell which rule is which for Reflag targeting.
    definitions = {d["key"]: d for d in build_environment_document(db, env["id"])["features"]}
    status = row["status"] if row else "inactive"
    evaluated = snapshot.evaluate_flag(f["key"], context) if status == "active" else None
    result: dict[str, Any] | None = dict(evaluated) if evaluated is not None else None
    qualified = list(result["ruleEvaluationResults"]) if result else []
    reflag = loads(row["reflag"]) if row else None
    if reflag is not None:
        rules = definitions.get(f["key"], {}).get("targeting", {}).get("rules", [])
        targets = [
            {
                "index": i,
                "_id": None,
                "name": None,
                "audienceMatch": _in_audience(f["key"], r.get("filter"), context),
                "rolloutPercentage": None,
                "qualified": qualified[i] if i < len(qualified) else False,
            }
            for i, r in enumerate(rules)
        ]
    else:
        targets = _targets(f["key"], loads(row["targets"], []) if row else [], audiences, context, qualified)
    served = next((t for t in targets if t["qualified"]), None) if result and result["value"] else None
    return {
        "feature": f["key"],
        "environment": env["key"],
        "draft": draft,
        "status": status,
        "targetingVersion": int(row["targeting_version"]) if row else 0,
        "enabled": bool(result["value"]) if result else False,
        # The served variation is the config variant's key (Reflag's own "variant" is on/off).
        "variation": ((result.get("config") or {}).get("key") or None) if result else None,
        "variables": (result.get("config") or {}).get("payload") if result else None,
        "reason": result["reason"] if result else "DISABLED",
        "target": served,
        "targets": targets,
        "missingContextFields": result["missingContextFields"] if result else [],
        "explanation": _explain(status, served, result, targets),
        "context": orjson.loads(orjson.dumps(context)),
    }


def _environment_param(value: str | None) -> str:
    if not value:
        raise validation("the environment query parameter is required", "query.environment", "required")
    return value


@router.route(
    "GET",
    "/v1/projects/{project}/features/{feature}/evaluate",
    summary="Evaluate a feature in ?environment= for ?context= (JSON) as the edge would; which target matched, why",
    query=TryContext,
    headers=ORG,
)
async def evaluate_feature(ctx: Ctx) -> Any:
    query: TryContext = ctx.query
    env_key = _environment_param(query.environment)
    context = _context(query.context)
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, ctx.path("feature"))
        return _answer(db, access.id, f, environment(db, access.id, env_key), context, draft=False)


class TryDraft(Strict):
    context: JsonObject = Field(default_factory=dict, description="A Reflag-shape context (typed values)")
    configuration: ConfigurationFields | None = Field(
        default=None, description="Unsaved targeting for ?environment=, as PATCH .../configurations takes it"
    )


class _Evaluated(Exception):
    """Carries the answer out of the transaction, which then rolls back: a draft is never saved."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer


@router.route(
    "POST",
    "/v1/projects/{project}/features/{feature}/evaluate",
    summary="Evaluate unsaved targeting (a draft) for a context; nothing is saved, read access is enough",
    query=EnvironmentQuery,
    body=TryDraft,
    headers=ORG,
)
async def evaluate_draft(ctx: Ctx) -> Any:
    body: TryDraft = ctx.body
    env_key = _environment_param(ctx.query.environment)
    try:
        # The draft is applied, checked and compiled exactly as a save would, in a transaction
        # that is always rolled back.
        with ctx.services.store.transaction() as db:
            access = project(db, ctx, "read")
            f = feature(db, access.id, ctx.path("feature"))
            env = environment(db, access.id, env_key)
            if body.configuration is not None:
                apply_configuration(
                    Write(db, ctx.principal, None), access.id, f["id"], env, body.configuration, "configuration."
                )
            raise _Evaluated(_answer(db, access.id, f, env, body.context, draft=body.configuration is not None))
    except _Evaluated as done:
        return done.answer
