"""Metric results and evaluation series, computed from what the intake stored.

**Metric results** (``MetricResult``: ``{result: {dataSeries, variations}, cached, updatedAt}``)
of a feature in an environment over ``[startDate, endDate]``, from the ``events`` table:

* a metric's events are DevCycle ``customEvent`` records whose ``customType`` is the metric's
  ``event`` (and Reflag ``event`` records of that name), each attributed to the variation its
  ``featureVars`` names for the feature (events without one are not attributed);
* a variation's exposed users are the distinct users whose events name that variation of the
  feature in ``featureVars`` (DevCycle SDKs send it with every event); its evaluations are the
  ``evaluation_counts`` of that variation in the range;
* per dimension: ``COUNT_PER_UNIQUE_USER`` = users with the event / exposed users;
  ``COUNT_PER_VARIABLE_EVALUATION`` = events / evaluations; ``SUM_PER_UNIQUE_USER`` = sum of
  values / exposed users; ``AVERAGE_PER_UNIQUE_USER`` = mean over users of their mean value;
  ``TOTAL_AVERAGE`` = mean value; ``TOTAL_SUM`` = sum of values (the ``rate`` of each).
* ``percentDifference`` is against the control variation (``null`` for it or when the control
  rate is 0); ``chanceToBeatControl`` is the normal approximation ``Φ(z)`` of the difference in
  the direction the metric optimizes (``null`` for the control or without variance).
* ``dataSeries``: per UTC day, ``values: {variation key: rate of the events up to that day}``.

**Evaluation series** (``results/evaluations``, ``results/total-evaluations``): per period
(``hour`` default, ``day``, ``month``), from ``evaluation_counts``: totals, or per variation key
for one feature. ``results/evaluations`` of a project counts distinct users from evaluation
events that carry a user (DevCycle ``variableEvaluated``); aggregated counts carry none.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from control_plane.dialect import Connection, Row
from control_plane.store import now_iso

PERIOD_CHARS = {"hour": 13, "day": 10, "month": 7}  # prefix of the stored ISO hour


@dataclass
class _Variation:
    key: str
    name: str
    exposed: set[str] = field(default_factory=set)
    users: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    days: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    evaluations: int = 0


def iso_ms(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms % 1000):03d}Z"


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _stats(v: _Variation, dimension: str) -> dict[str, float]:
    values = [x for xs in v.users.values() for x in xs]
    per_user = [sum(xs) / len(xs) for xs in v.users.values() if xs]
    exposed = len(v.exposed | set(v.users))
    if dimension == "COUNT_PER_UNIQUE_USER":
        num, den = float(len(v.users)), float(exposed)
    elif dimension == "COUNT_PER_VARIABLE_EVALUATION":
        num, den = float(len(values)), float(v.evaluations)
    elif dimension == "SUM_PER_UNIQUE_USER":
        num, den = float(sum(values)), float(exposed)
    elif dimension == "AVERAGE_PER_UNIQUE_USER":
        num, den = float(sum(per_user)), float(len(per_user))
    elif dimension == "TOTAL_AVERAGE":
        num, den = float(sum(values)), float(len(values))
    else:  # TOTAL_SUM
        num, den = float(sum(values)), 1.0
    rate = num / den if den else 0.0
    sample = per_user if dimension in ("AVERAGE_PER_UNIQUE_USER", "SUM_PER_UNIQUE_USER") else values
    mean = sum(sample) / len(sample) if sample else 0.0
    stdev = math.sqrt(sum((x - mean) ** 2 for x in sample) / (len(sample) - 1)) if len(sample) > 1 else 0.0
    if dimension == "COUNT_PER_UNIQUE_USER":
        stdev = math.sqrt(rate * (1 - rate)) if 0 <= rate <= 1 else 0.0
    return {
        "numerator": num,
        "denominator": den,
        "rate": rate,
        "avgValue": mean,
        "totalValue": float(sum(values)),
        "stdev": stdev,
        "n": float(max(den, 1.0)),
    }


def metric_result(
    db: Connection,
    feature: Row,
    environment_ids: Sequence[str],
    *,
    event: str,
    dimension: str,
    optimize: str,
    control: str | None,
    start: str,
    end: str,
) -> dict[str, Any]:
    """The ``MetricResult`` body (module doc)."""
    variations = {
        r["id"]: _Variation(r["key"], r["name"])
        for r in db.execute(
            "SELECT id, key, name FROM variations WHERE feature_id = ? ORDER BY position", (feature["id"],)
        )
    }
    marks = ",".join("?" * len(environment_ids))
    rows = db.execute(
        f"SELECT type, user_id, name, payload, received_at FROM events WHERE environment_id IN ({marks})"
        " AND type IN ('devcycle-event', 'event') AND received_at >= ? AND received_at <= ?",
        (*environment_ids, start, end),
    ).fetchall()
    for r in rows:
        payload = orjson.loads(r["payload"])
        feature_vars = payload.get("featureVars")
        variation = variations.get(feature_vars.get(feature["id"])) if isinstance(feature_vars, dict) else None
        if variation is None or not r["user_id"]:
            continue
        variation.exposed.add(r["user_id"])
        is_metric = (r["type"] == "event" and r["name"] == event) or (
            payload.get("type") == "customEvent" and payload.get("customType") == event
        )
        if is_metric:
            value = payload.get("value")
            number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 1.0
            variation.users[r["user_id"]].append(number)
            variation.days[str(r["received_at"])[:10]].append(number)
    by_key = {v.key: v for v in variations.values()}
    for c in db.execute(
        f"SELECT variation_key, SUM(evaluations) AS n FROM evaluation_counts WHERE environment_id IN ({marks})"
        " AND feature_key = ? AND hour >= ? AND hour <= ? GROUP BY variation_key",
        (*environment_ids, feature["key"], start[:13], end),
    ):
        if c["variation_key"] in by_key:
            by_key[c["variation_key"]].evaluations = int(c["n"])
    stats = {k: _stats(v, dimension) for k, v in by_key.items()}
    base = stats.get(control or "")
    out = []
    for key, v in by_key.items():
        s = stats[key]
        diff: float | None = None
        chance: float | None = None
        if base is not None and key != control:
            if base["rate"]:
                diff = (s["rate"] - base["rate"]) / base["rate"] * 100
            se = math.sqrt(s["stdev"] ** 2 / s["n"] + base["stdev"] ** 2 / base["n"])
            if se > 0:
                z = (s["rate"] - base["rate"]) / se
                chance = _phi(z if optimize == "increase" else -z)
        out.append(
            {
                "key": key,
                "name": v.name,
                "numerator": s["numerator"],
                "denominator": s["denominator"],
                "rate": s["rate"],
                "avgValue": s["avgValue"],
                "totalValue": s["totalValue"],
                "stdev": s["stdev"],
                "percentDifference": diff,
                "chanceToBeatControl": chance,
            }
        )
    days = sorted({d for v in by_key.values() for d in v.days})
    series = []
    running: dict[str, list[float]] = defaultdict(list)
    for day in days:
        for key, v in by_key.items():
            running[key] += v.days.get(day, [])
        series.append({"date": f"{day}T00:00:00.000Z", "values": {k: sum(xs) for k, xs in running.items()}})
    return {"result": {"dataSeries": series, "variations": out}, "cached": False, "updatedAt": now_iso()}


def evaluation_series(
    db: Connection,
    environment_ids: Sequence[str],
    *,
    feature_key: str | None,
    start: str,
    end: str,
    period: str,
    sdk_type: str | None,
) -> list[dict[str, Any]]:
    """Evaluations per period: ``{date, value}`` totals, or ``{date, values: {variation: n}}``
    for one feature."""
    marks = ",".join("?" * len(environment_ids))
    sql = (
        f"SELECT hour, variation_key, SUM(evaluations) AS n FROM evaluation_counts WHERE environment_id IN ({marks})"
        " AND hour >= ? AND hour <= ?"
    )
    args: list[Any] = [*environment_ids, start[:13], end]
    if feature_key is not None:
        sql += " AND feature_key = ?"
        args.append(feature_key)
    if sdk_type is not None:
        sql += " AND sdk_type = ?"
        args.append(sdk_type)
    buckets: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in db.execute(sql + " GROUP BY hour, variation_key ORDER BY hour", args):
        bucket = _period_start(r["hour"], period)
        buckets[bucket][r["variation_key"]] += int(r["n"])
    if feature_key is None:
        return [{"date": d, "value": sum(v.values())} for d, v in sorted(buckets.items())]
    return [{"date": d, "values": dict(sorted(v.items()))} for d, v in sorted(buckets.items())]


def unique_user_series(
    db: Connection, environment_ids: Sequence[str], *, start: str, end: str, period: str
) -> list[dict[str, Any]]:
    """Distinct users with an evaluation event per period (``{date, value}``)."""
    marks = ",".join("?" * len(environment_ids))
    users: dict[str, set[str]] = defaultdict(set)
    for r in db.execute(
        f"SELECT user_id, payload, received_at FROM events WHERE environment_id IN ({marks})"
        " AND type = 'devcycle-event' AND received_at >= ? AND received_at <= ?",
        (*environment_ids, start, end),
    ):
        if r["user_id"] and orjson.loads(r["payload"]).get("type") == "variableEvaluated":
            users[_period_start(str(r["received_at"])[:13] + ":00:00.000Z", period)].add(r["user_id"])
    return [{"date": d, "value": len(u)} for d, u in sorted(users.items())]


def _period_start(hour: str, period: str) -> str:
    prefix = hour[: PERIOD_CHARS.get(period, 13)]
    return {
        "hour": f"{prefix}:00:00.000Z",
        "day": f"{prefix}T00:00:00.000Z",
        "month": f"{prefix}-01T00:00:00.000Z",
    }.get(period, f"{prefix}:00:00.000Z")
