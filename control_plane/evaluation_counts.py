"""Evaluation counts per environment, feature, variation, hour and SDK type, from the intake.

Two kinds of intake records add to ``evaluation_counts`` when the events consumer first stores
them (``events_consumer._store``: a replayed record is a duplicate there and adds nothing):

* ``evaluation-counts`` (:data:`EDGE_COUNTS`), the edge's own: per worker, what it served,
  ``{"hour": "YYYY-MM-DDTHH:00:00.000Z", "counts": [{"feature", "variation", "count"}]}``
  (feature and variation keys), flushed periodically (``server.evaluation_counts``);
* ``devcycle-event`` records of DevCycle SDKs' own evaluation events: ``aggVariableEvaluated``
  (server SDKs' WASM aggregates, ``value`` evaluations of variable ``target``, with
  ``metaData._feature``/``_variation``) and ``variableEvaluated`` (one each; the variation is
  ``featureVars[feature of the variable]``). Defaulted evaluations served no variation and are
  not counted.

The SDK type is the key kind that sent the record (``client``, ``mobile``, ``server``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from contract.intake import EVALUATION_COUNTS, IntakeRecord
from control_plane.dialect import Connection

EDGE_COUNTS = EVALUATION_COUNTS
DEVCYCLE_EVENT = "devcycle-event"  # server.devcycle.events.EVENT_TYPE (the edge's package)
SDK_TYPES = ("client", "server", "mobile", "api")
MAX_COUNT = 1 << 40

ADD = (
    "INSERT INTO evaluation_counts (environment_id, feature_key, variation_key, hour, sdk_type, evaluations)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (environment_id, feature_key, variation_key, hour, sdk_type)"
    " DO UPDATE SET evaluations = evaluation_counts.evaluations + excluded.evaluations"
)


def hour_of(ms: float) -> str:
    """The UTC hour ``ms`` (epoch milliseconds) falls in, as stored."""
    return datetime.fromtimestamp(ms // 3_600_000 * 3600, UTC).strftime("%Y-%m-%dT%H:00:00.000Z")


def _hour_of_text(value: str | None) -> str:
    try:
        parsed = datetime.fromisoformat((value or "").replace("Z", "+00:00"))
    except ValueError:
        parsed = datetime.now(UTC)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return hour_of(parsed.timestamp() * 1000)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_COUNT:
        return None
    return int(value)


def _edge_counts(event: dict[str, Any]) -> Iterator[tuple[str, str, int]]:
    for item in event.get("counts") or []:
        if not isinstance(item, dict):
            continue
        feature, variation, count = item.get("feature"), item.get("variation"), _count(item.get("count"))
        if isinstance(feature, str) and isinstance(variation, str) and count:
            yield feature, variation, count


def _sdk_counts(db: Connection, environment: str, event: dict[str, Any]) -> Iterator[tuple[str, str, int]]:
    kind = event.get("type")
    if kind not in ("aggVariableEvaluated", "variableEvaluated"):
        return
    count = _count(event.get("value")) if kind == "aggVariableEvaluated" else 1
    meta = event.get("metaData")
    if not isinstance(meta, dict):
        meta = {}
    feature_id, variation_id = meta.get("_feature"), meta.get("_variation")
    if not isinstance(feature_id, str):
        # variableEvaluated: the variable's feature, and the variation the user had of it.
        row = db.execute(
            "SELECT v.feature_id FROM variables v JOIN environments e ON e.project_id = v.project_id"
            " WHERE e.id = ? AND v.key = ?",
            (environment, event.get("target")),
        ).fetchone()
        feature_id = row["feature_id"] if row else None
        variations = event.get("featureVars")
        variation_id = variations.get(feature_id) if isinstance(variations, dict) and feature_id else None
    if not count or not isinstance(feature_id, str) or not isinstance(variation_id, str):
        return
    row = db.execute(
        "SELECT f.key AS feature, v.key AS variation FROM features f JOIN variations v ON v.feature_id = f.id"
        " WHERE f.id = ? AND v.id = ?",
        (feature_id, variation_id),
    ).fetchone()
    if row is not None:
        yield row["feature"], row["variation"], count


def apply(db: Connection, record: IntakeRecord) -> None:
    """Add a newly stored record's evaluations (if it has any) to ``evaluation_counts``."""
    kind, event = record["type"], record["event"]
    sdk_type = record["keyKind"] if record["keyKind"] in SDK_TYPES else "api"
    if kind == EDGE_COUNTS:
        hour = event.get("hour") if isinstance(event.get("hour"), str) else _hour_of_text(record["receivedAt"])
        counts = list(_edge_counts(event))
    elif kind == DEVCYCLE_EVENT:
        date = event.get("date")
        hour = (
            hour_of(date)
            if isinstance(date, int | float) and not isinstance(date, bool) and date > 0
            else (_hour_of_text(record["receivedAt"]))
        )
        counts = list(_sdk_counts(db, record["environment"], event))
    else:
        return
    db.executemany(ADD, [(record["environment"], f, v, hour, sdk_type, n) for f, v, n in counts])


def feature_evaluations_since(db: Connection, feature_id: str, since: str) -> int | None:
    """Evaluations of the feature (by its key, in every environment of its project) counted in the
    hours from the one ``since`` falls in; None when the project has no counts at all (counting is
    off or nothing reported yet: absence of data is not evidence of no use)."""
    feature = db.execute("SELECT project_id, key FROM features WHERE id = ?", (feature_id,)).fetchone()
    if feature is None:
        return None
    envs = "SELECT id FROM environments WHERE project_id = ?"
    if (
        db.execute(
            f"SELECT 1 FROM evaluation_counts WHERE environment_id IN ({envs}) LIMIT 1", (feature["project_id"],)
        ).fetchone()
        is None
    ):
        return None
    row = db.execute(
        f"SELECT COALESCE(SUM(evaluations), 0) AS n FROM evaluation_counts WHERE environment_id IN ({envs})"
        " AND feature_key = ? AND hour >= ?",
        (feature["project_id"], feature["key"], _hour_of_text(since)),
    ).fetchone()
    return int(row["n"])
