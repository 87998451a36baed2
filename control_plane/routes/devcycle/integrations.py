"""DevCycle's Jira and Dynatrace integration routes, as stored records: nothing here calls Jira or
Dynatrace.

* Jira issues linked to a feature: ``POST/GET .../features/{feature}/integrations/jira/issues``,
  ``DELETE .../jira/issues/{issue_id}`` (``dv_jira_issues``).
* The organisation's Dynatrace environments: ``POST /v1/integrations/dynatrace`` (create or
  update by ``dynatraceEnvironmentId``), ``GET`` (each with the projects whose
  ``settings.dynatrace.environmentMap`` names it), ``DELETE .../{dynatraceEnvironmentId}``.
  Access tokens are kept encrypted (:mod:`control_plane.key_vault`) and shown to organisation
  admins only, as the routes are theirs.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from control_plane.errors import not_found
from control_plane.http import Ctx, Write
from control_plane.routes.devcycle.common import (
    ORG,
    DvBody,
    caller_organisation,
    dv_router,
    feature,
    loads,
    project,
    write_project,
)
from control_plane.routes.devcycle.projects import PROJECT_SELECT
from control_plane.routes.devcycle.views import project_view
from control_plane.store import now_iso

router = dv_router("devcycle-integrations")

JIRA = "/v1/projects/{project}/features/{feature}/integrations/jira/issues"
DYNATRACE = "/v1/integrations/dynatrace"


class LinkJiraIssue(DvBody):
    issueId: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")


class DynatraceEnvironment(DvBody):
    dynatraceEnvironmentId: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    accessToken: str = Field(min_length=1, max_length=2000)
    environmentUrl: str = Field(min_length=1, max_length=2000, pattern=r"^https?://")


@router.route("POST", JIRA, summary="Link a Jira issue to a feature", body=LinkJiraIssue, status=201, headers=ORG)
async def link_jira_issue(ctx: Ctx) -> Any:
    body: LinkJiraIssue = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        w.db.execute(
            "INSERT INTO dv_jira_issues (feature_id, issue_id, created_by, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (feature_id, issue_id) DO NOTHING",
            (f["id"], body.issueId, w.principal.user_id or "", now_iso()),
        )
        w.audit(
            "feature.jira_link",
            f"feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"issueId": body.issueId},
        )
        return {"issueId": body.issueId}

    return ctx.commit(change, status=201)


@router.route("GET", JIRA, summary="List the Jira issues linked to a feature", headers=ORG)
async def list_jira_issues(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, ctx.path("feature"))
        rows = db.execute(
            "SELECT issue_id FROM dv_jira_issues WHERE feature_id = ? ORDER BY created_at, issue_id", (f["id"],)
        )
        return [{"issueId": r["issue_id"]} for r in rows]


@router.route("DELETE", JIRA + "/{issue_id}", summary="Unlink a Jira issue from a feature", headers=ORG)
async def unlink_jira_issue(ctx: Ctx) -> Any:
    issue = ctx.path("issue_id")

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        gone = w.db.execute(
            "DELETE FROM dv_jira_issues WHERE feature_id = ? AND issue_id = ? RETURNING issue_id", (f["id"], issue)
        ).fetchone()
        if gone is None:
            raise not_found(f"Jira issue {issue!r} of this feature")
        w.audit(
            "feature.jira_unlink",
            f"feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"issueId": issue},
        )
        return {"issueId": issue}

    return ctx.commit(change)


@router.route(
    "POST",
    DYNATRACE,
    summary="Create or update a Dynatrace environment of the organisation",
    body=DynatraceEnvironment,
    status=201,
    headers=ORG,
)
async def save_dynatrace_environment(ctx: Ctx) -> Any:
    body: DynatraceEnvironment = ctx.body

    def change(w: Write) -> dict[str, Any]:
        org = caller_organisation(w.db, ctx, "admin")
        now = now_iso()
        token = ctx.services.vault.seal(body.accessToken, f"{org.id}/{body.dynatraceEnvironmentId}")
        w.db.execute(
            "INSERT INTO dv_dynatrace_environments (organisation_id, dynatrace_environment_id, access_token,"
            " environment_url, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (organisation_id, dynatrace_environment_id) DO UPDATE SET"
            " access_token = excluded.access_token, environment_url = excluded.environment_url,"
            " updated_at = excluded.updated_at",
            (org.id, body.dynatraceEnvironmentId, token, body.environmentUrl, now, now),
        )
        w.audit(
            "integration.dynatrace",
            f"dynatrace:{body.dynatraceEnvironmentId}",
            organisation_id=org.id,
            details={"environmentUrl": body.environmentUrl},
        )
        return {
            "dynatraceEnvironmentId": body.dynatraceEnvironmentId,
            "accessToken": body.accessToken,
            "environmentUrl": body.environmentUrl,
        }

    return ctx.commit(change, status=201)


@router.route("GET", DYNATRACE, summary="The organisation's Dynatrace environments", headers=ORG)
async def list_dynatrace_environments(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        org = caller_organisation(db, ctx, "admin")
        projects = db.execute(PROJECT_SELECT + " WHERE p.organisation_id = ? ORDER BY p.key", (org.id,)).fetchall()
        out = []
        for r in db.execute(
            "SELECT * FROM dv_dynatrace_environments WHERE organisation_id = ?"
            " ORDER BY created_at, dynatrace_environment_id",
            (org.id,),
        ):
            env_id = r["dynatrace_environment_id"]
            using = [
                project_view(p)
                for p in projects
                if env_id in ((loads(p["settings"], {}).get("dynatrace") or {}).get("environmentMap") or {}).values()
            ]
            out.append(
                {
                    "dynatraceEnvironmentId": env_id,
                    "accessToken": ctx.services.vault.open(r["access_token"], f"{org.id}/{env_id}"),
                    "environmentUrl": r["environment_url"],
                    "projects": using,
                }
            )
        return {"environments": out}


@router.route("DELETE", DYNATRACE + "/{dynatraceEnvironmentId}", summary="Delete a Dynatrace environment", headers=ORG)
async def delete_dynatrace_environment(ctx: Ctx) -> Any:
    env_id = ctx.path("dynatraceEnvironmentId")

    def change(w: Write) -> dict[str, Any]:
        org = caller_organisation(w.db, ctx, "admin")
        gone = w.db.execute(
            "DELETE FROM dv_dynatrace_environments WHERE organisation_id = ? AND dynatrace_environment_id = ?"
            " RETURNING dynatrace_environment_id",
            (org.id, env_id),
        ).fetchone()
        if gone is None:
            raise not_found(f"Dynatrace environment {env_id!r}")
        w.audit("integration.dynatrace_delete", f"dynatrace:{env_id}", organisation_id=org.id)
        return {"dynatraceEnvironmentId": env_id}

    return ctx.commit(change)
