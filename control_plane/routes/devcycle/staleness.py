"""Feature staleness, computed from what the store knows (README "DevCycle staleness").

A feature is stale for the first of these reasons that holds (each can be turned off in the
project's ``settings.staleness``; ``settings.staleness.enabled: false`` turns all off):

* ``released``: the feature is complete, or every production environment serves one variation to
  everyone, and nothing about it changed for :data:`RELEASED_DAYS` days;
* ``unused``: it is older than :data:`UNUSED_DAYS` days and was evaluated 0 times in the last
  :data:`UNUSED_DAYS` days, by the project's evaluation counts (``evaluation_counts``: the edge's
  and DevCycle SDKs' own; a project with no counts at all has no ``unused`` features);
* ``unmodified``: nothing changed for :data:`UNMODIFIED_LONG_DAYS` days (``unmodifiedLong``), or
  for :data:`UNMODIFIED_SHORT_DAYS` days while no production environment serves it
  (``unmodifiedShort``).

"Changed" is the newest of the feature's ``updatedAt``, its configurations' ``updatedAt`` and its
newest audit entry. Archived features are never stale. A feature's own staleness settings
(``PATCH .../staleness``) silence it: ``disabled``, or ``snoozedUntil`` in the future.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from control_plane.dialect import Connection, Row
from control_plane.evaluation_counts import feature_evaluations_since
from control_plane.routes.devcycle.common import loads
from control_plane.routes.devcycle.feature_audit import latest_entry

RELEASED_DAYS = 7
UNUSED_DAYS = 7
UNMODIFIED_SHORT_DAYS = 30
UNMODIFIED_LONG_DAYS = 90
REASONS = ("released", "unused", "unmodified")


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _serves_one_to_everyone(targets: list[Any]) -> bool:
    for t in targets:
        filters = (t.get("audience") or {}).get("filters") or {}
        everyone = [f.get("type") for f in filters.get("filters", [])] == ["all"]
        dist = t.get("distribution") or []
        if everyone and not t.get("rollout") and len(dist) == 1 and dist[0].get("percentage") == 1:
            return True
    return False


def last_change(db: Connection, f: Row) -> str:
    times = [f["updated_at"]]
    row = db.execute("SELECT max(updated_at) AS at FROM feature_configurations WHERE feature_id = ?", (f["id"],))
    at = row.fetchone()["at"]
    if at:
        times.append(at)
    entry = latest_entry(db, f["project_id"], f["key"])
    if entry is not None:
        times.append(entry["at"])
    return str(max(times))


def production_configs(db: Connection, feature_id: str) -> list[Row]:
    return list(
        db.execute(
            "SELECT c.* FROM feature_configurations c JOIN environments e ON e.id = c.environment_id"
            " WHERE c.feature_id = ? AND e.type = 'production'",
            (feature_id,),
        ).fetchall()
    )


def prod_targeting_updated_at(db: Connection, feature_id: str) -> str | None:
    times = [r["updated_at"] for r in production_configs(db, feature_id) if r["updated_at"]]
    return max(times) if times else None


def _reason(db: Connection, f: Row, settings: dict[str, Any], changed: datetime, now: datetime) -> str | None:
    def on(kind: str) -> bool:
        return bool((settings.get(kind) or {}).get("enabled", True))

    if f["status"] == "archived" or not settings.get("enabled", True):
        return None
    age = now - changed
    prod = production_configs(db, f["id"])
    active_prod = [r for r in prod if r["status"] == "active"]
    released = f["status"] == "complete" or (
        bool(active_prod) and all(_serves_one_to_everyone(loads(r["targets"], [])) for r in active_prod)
    )
    if on("released") and released and age >= timedelta(days=RELEASED_DAYS):
        return "released"
    if on("unused") and now - _parse(f["created_at"]) >= timedelta(days=UNUSED_DAYS):
        count = feature_evaluations_since(db, f["id"], _iso(now - timedelta(days=UNUSED_DAYS)))
        if count == 0:
            return "unused"
    if on("unmodifiedLong") and age >= timedelta(days=UNMODIFIED_LONG_DAYS):
        return "unmodified"
    if on("unmodifiedShort") and age >= timedelta(days=UNMODIFIED_SHORT_DAYS) and not active_prod:
        return "unmodified"
    return None


def staleness(db: Connection, f: Row) -> dict[str, Any]:
    """DevCycle's FeatureStalenessEntity of the feature row ``f``."""
    return assess(db, f)[0]


def assess(db: Connection, f: Row, now: datetime | None = None) -> tuple[dict[str, Any], bool]:
    """The staleness entity, and whether the feature's own settings hide a reason it has
    (``includeSilenced`` of the project's stale list)."""
    now = now or datetime.now(UTC)
    project = db.execute("SELECT settings FROM projects WHERE id = ?", (f["project_id"],)).fetchone()
    settings = (loads(project["settings"], {}) if project else {}).get("staleness") or {}
    own = db.execute("SELECT * FROM dv_feature_staleness WHERE feature_id = ?", (f["id"],)).fetchone()
    changed = last_change(db, f)
    reason = _reason(db, f, settings, _parse(changed), now)
    disabled = bool(own["disabled"]) if own else False
    snoozed = own["snoozed_until"] if own else None
    silenced = disabled or (snoozed is not None and _parse(snoozed) > now)
    entity: dict[str, Any] = {
        "key": f["key"],
        "name": f["name"],
        "_feature": f["id"],
        "stale": reason is not None and not silenced,
        "updatedAt": changed,
        "disabled": disabled,
        "snoozedUntil": snoozed,
        "metaData": loads(own["meta_data"], {}) if own else {},
    }
    if reason is not None:
        entity["reason"] = reason
    return entity, silenced and reason is not None
