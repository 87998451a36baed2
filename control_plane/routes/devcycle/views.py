"""The JSON shape of each DevCycle resource in responses (field names as DevCycle spells them).

One ``*_view`` per resource; an SDK key is shown inside its environment and a feature's
configurations inside the feature. They sit below the route modules because writes answer with
a parent resource: variation and variable writes with the whole feature, SDK key writes with
the environment.
"""

from __future__ import annotations

from typing import Any

from control_plane.dialect import Connection, Row
from control_plane.key_vault import KeyVault
from control_plane.routes.devcycle.common import loads, merge_settings
from control_plane.routes.devcycle.feature_audit import latest_update
from control_plane.routes.devcycle.staleness import prod_targeting_updated_at, staleness

# Every settings object DevCycle's Project has, as it reads before anything is set; stored
# settings are merged over it.
PROJECT_SETTINGS_DEFAULTS: dict[str, Any] = {
    "edgeDB": {"enabled": False},
    "optIn": {
        "enabled": False,
        "title": "",
        "description": "",
        "imageURL": "",
        "colors": {"primary": "", "secondary": ""},
        "poweredByAlignment": "center",
    },
    "sdkTypeVisibility": {"enabledInFeatureSettings": False},
    "lifeCycle": {"disableCodeRefChecks": False},
    "obfuscation": {"enabled": False, "required": False},
    "featureApprovalWorkflow": {"enabled": False, "allowPublisherBypass": True, "defaultReviewers": []},
    "disablePassthroughRollouts": False,
    "staleness": {
        "enabled": True,
        "released": {"enabled": True},
        "unmodifiedLong": {"enabled": True},
        "unmodifiedShort": {"enabled": True},
        "unused": {"enabled": True},
        "email": {"enabled": False, "frequency": "weekly", "users": [], "lastNotification": None},
    },
    "dynatrace": {"enabled": False, "environmentMap": {}},
}


def project_view(row: Row) -> dict[str, Any]:
    """DevCycle's Project. ``hasJiraIntegration`` says whether any feature links a Jira issue
    (the integration is stored records only: no base URL); code usages, SDK config fetches and
    Vercel Edge Config are not tracked here, so they read false and empty."""
    return {
        "_id": row["id"],
        "_organization": row["organisation_id"],
        "_createdBy": row["dv_created_by"] or "",
        "name": row["name"],
        "key": row["key"],
        "description": row["description"],
        "color": row["dv_color"] or "",
        "settings": merge_settings(PROJECT_SETTINGS_DEFAULTS, loads(row["settings"], {})),
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "hasJiraIntegration": bool(row["dv_has_jira"]),
        "hasReceivedCodeUsages": False,
        "hasUserConfigFetch": False,
        "jiraBaseUrl": "",
        "readonly": False,
        "vercelEdgeConfigConnections": [],
    }


def key_view(row: Row) -> dict[str, Any]:
    return {
        "prefix": row["prefix"],
        "createdAt": row["created_at"],
        "compromised": row["revoked_at"] is not None,
        "invalidatedAt": row["revoked_at"],
    }


def environment_view(
    db: Connection,
    row: Row,
    new_keys: dict[str, str] | None = None,
    readable: KeyVault | None = None,
) -> dict[str, Any]:
    """The DevCycle environment. ``new_keys`` (hash -> plaintext) are shown in full; with
    ``readable`` (the caller is an admin) every key kept encrypted is too, as the DevCycle CLI
    reads ``sdkKeys[type][i].key``. A key from before encryption at rest has only its hash: it
    shows its prefix and ``"key": null``."""
    keys: dict[str, list[dict[str, Any]]] = {"mobile": [], "client": [], "server": []}
    rows = db.execute(
        "SELECT k.*, s.ciphertext FROM sdk_keys k LEFT JOIN dv_sdk_key_secrets s ON s.key_hash = k.key_hash"
        " WHERE k.environment_id = ? ORDER BY k.created_at, k.prefix",
        (row["id"],),
    ).fetchall()
    for k in rows:
        view = key_view(k)
        if new_keys and k["key_hash"] in new_keys:
            view = {"key": new_keys[k["key_hash"]], **view}
        elif readable is not None:
            plain = readable.open(k["ciphertext"], k["key_hash"]) if k["ciphertext"] else None
            view = {"key": plain, **view}
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


def feature_view(db: Connection, feature_id: str, *, include_latest: bool = True) -> dict[str, Any]:
    """DevCycle's Feature (v1 and v2 alike). ``latestUpdate`` is the newest audit entry (lists
    leave it out unless asked, ``includeLatestUpdate``), ``staleness`` is computed
    (:mod:`staleness`), ``changeRequests`` lists pending change requests (none until the
    approval workflow lands)."""
    f = db.execute("SELECT * FROM features WHERE id = ?", (feature_id,)).fetchone()
    variations = db.execute("SELECT * FROM variations WHERE feature_id = ? ORDER BY position", (feature_id,)).fetchall()
    keys = {v["id"]: v["key"] for v in variations}
    variables = db.execute(
        "SELECT * FROM variables WHERE feature_id = ? ORDER BY created_at, id", (feature_id,)
    ).fetchall()
    view = {
        "_id": f["id"],
        "_project": f["project_id"],
        "source": "api",
        "status": f["status"],
        "type": f["type"],
        "name": f["name"],
        "key": f["key"],
        "description": f["description"],
        "_createdBy": f["created_by"],
        "createdAt": f["created_at"],
        "updatedAt": f["updated_at"],
        "variations": [variation_view(v) for v in variations],
        "controlVariation": keys.get(f["control_variation"]),
        "staticVariation": keys.get(f["static_variation"]),
        "variables": [variable_view(v) for v in variables],
        "tags": loads(f["tags"], []),
        "readonly": False,
        "settings": loads(f["settings"], {}),
        "sdkVisibility": {"mobile": True, "client": True, "server": True, **loads(f["sdk_visibility"], {})},
        "configurations": feature_configurations(db, f),
        "summary": loads(f["summary"], {}),
        "prodTargetingUpdatedAt": prod_targeting_updated_at(db, feature_id),
        "ldLink": None,
        "changeRequests": [],
        "staleness": staleness(db, f),
    }
    if include_latest:
        view["latestUpdate"] = latest_update(db, f["project_id"], f["key"])
    return view


def variation_view(row: Row) -> dict[str, Any]:
    return {"_id": row["id"], "key": row["key"], "name": row["name"], "variables": loads(row["variables"], {})}


def variable_view(row: Row) -> dict[str, Any]:
    view: dict[str, Any] = {
        "_id": row["id"],
        "_project": row["project_id"],
        "_feature": row["feature_id"],
        "name": row["name"] or row["key"],
        "description": row["description"],
        "key": row["key"],
        "type": row["type"],
        "status": row["status"],
        "source": "api",
        "_createdBy": row["created_by"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "persistent": bool(row["persistent"]),
        "tags": loads(row["tags"], []),
    }
    if row["validation_schema"]:
        view["validationSchema"] = loads(row["validation_schema"])
    return view


def configuration_view(feature: Row, env: Row, row: Row | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "_feature": feature["id"],
        "_environment": env["id"],
        "_createdBy": row["created_by"] if row else "",
        "status": row["status"] if row else "inactive",
        "startedAt": row["started_at"] if row else None,
        "updatedAt": row["updated_at"] if row else feature["created_at"],
        "targets": loads(row["targets"], []) if row else [],
        "targetingVersion": row["targeting_version"] if row else 0,
        "readonly": False,
        "hasStaticConfig": feature["status"] == "complete",
    }
    reflag = loads(row["reflag"]) if row else None
    if reflag is not None:
        view["targeting"] = {"version": view["targetingVersion"], **reflag["targeting"]}
        if "config" in reflag:
            view["config"] = {"version": view["targetingVersion"], **reflag["config"]}
    return view


def feature_configurations(db: Connection, feature: Row, env_id: str | None = None) -> list[dict[str, Any]]:
    """The feature's configuration in every environment of its project (or only ``env_id``), in
    environment creation order; an environment without a row shows the inactive default."""
    envs = db.execute(
        "SELECT * FROM environments WHERE project_id = ?"
        + (" AND id = ?" if env_id else "")
        + " ORDER BY created_at, id",
        (feature["project_id"], env_id) if env_id else (feature["project_id"],),
    ).fetchall()
    rows = {
        r["environment_id"]: r
        for r in db.execute("SELECT * FROM feature_configurations WHERE feature_id = ?", (feature["id"],))
    }
    return [configuration_view(feature, e, rows.get(e["id"])) for e in envs]


def audience_view(row: Row, used: set[str] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": row["name"],
        "key": row["key"],
        "description": row["description"],
        "_id": row["id"],
        "_project": row["project_id"],
        "filters": loads(row["filters"], {}),
        "source": "api",
        "_createdBy": row["created_by"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "tags": loads(row["tags"], []),
        "readonly": False,
    }
    if used is not None:
        view["hasUsage"] = row["id"] in used
    return view


def property_view(row: Row, used: set[str] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": row["name"],
        "key": row["key"],
        "_id": row["id"],
        "_project": row["project_id"],
        "_createdBy": row["created_by"],
        "propertyKey": row["property_key"],
        "type": row["type"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
    if row["schema"]:
        view["schema"] = loads(row["schema"])
    if used is not None:
        view["hasUsage"] = row["property_key"] in used
    return view
