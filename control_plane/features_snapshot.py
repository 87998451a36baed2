"""Reflag-shape feature definitions of one environment, built from the feature tables.

Every feature of the environment's project whose configuration there is active becomes
``{"key", "targeting": {"version", "rules": [{"filter"}]}, "config"?: {"version", "variants"}}``:
the ``features`` of the snapshot document, which Reflag's ``GET /features`` serves and which
gives every flag of ``/features/evaluated`` its place, ``targetingVersion`` and config version.

Who gets what is decided in one of two ways:

- **DevCycle targets** that DevCycle's bucketing can read (only DevCycle filter nodes, directly
  and in the audiences they reference) are decided on the edge by DevCycle's own algorithm, from
  the snapshot's ``devcycle`` section (``control_plane.devcycle_config``): murmur3 bucketing,
  distributions in DevCycle's order, ``bucketingKey`` read from custom data, rollouts at the
  request's clock. Their Reflag-shape definition below is then only the view served to Reflag
  SDKs by ``GET /features``.
- Everything else is evaluated from the Reflag-shape definition: **Reflag targeting**
  (``targeting.rules`` and optional ``config.variants``) as sent, and DevCycle targets that mix
  in Reflag or JSON Logic nodes, translated as follows.

The translation of DevCycle targets: target *i* becomes rule *i*,
``{"type": "group", "operator": "and", "filters": [audience, rollout?, not earlier audiences?]}``
with the audience filter always at ``filters[0]``. Its distribution becomes one config variant
per variation, the same filter plus Reflag ``rolloutPercentage`` nodes that cut the bucket
range ``[lo, hi)`` out of ``[0, 100000)``, keyed by the target id over the bucketing attribute
(``user.id`` unless ``bucketingKey`` names another field). Variants are ordered by target, so
the first variant that matches belongs to the first target the user qualifies for. With the
project setting ``disablePassthroughRollouts`` a user in an earlier target's audience never
falls through to a later target (its audiences are negated), as in DevCycle. Its rollouts are
taken at their percentage when the snapshot is built (a Reflag rule has no clock), and its
buckets are Reflag's (SHA-256), not DevCycle's: only targets DevCycle cannot evaluate use it.

In both formats filter trees may mix dialects: DevCycle groups (``{"operator", "filters"}``)
become Reflag groups (an empty DevCycle group never matches), ``{"type": "all"}`` becomes a
constant, ``user``/``optIn`` nodes are passed to the evaluator's DevCycle filter,
``audienceMatch`` nodes are replaced by the referenced audiences' filters (inlined from the
``audiences`` table), and Reflag and ``jsonLogic`` nodes are kept. A ``complete`` feature serves
its static variation to everyone; ``archived`` features are left out.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from control_plane.dialect import Connection

THRESHOLD_SCALE = 100_000
# Built-in DevCycle user fields and where they live in a Reflag context.
USER_FIELDS = ("email", "country", "platform", "platformVersion", "appVersion", "deviceModel")

_TRUE: dict[str, Any] = {"type": "constant", "value": True}
_FALSE: dict[str, Any] = {"type": "constant", "value": False}


def _loads(text: str | None, default: Any) -> Any:
    return orjson.loads(text) if text else default


def iso_ms(value: str) -> float:
    """Epoch milliseconds of an ISO 8601 date-time (UTC when it has no offset)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000.0


# ---------------------------------------------------------------------------------------------
# Filters


def translate_filter(node: Any, audiences: Mapping[str, Any], stack: tuple[str, ...] = ()) -> Any:
    """A stored filter tree in the evaluator's shape, with ``audienceMatch`` inlined.

    Unknown shapes are passed through unchanged so that the evaluator reports them with a path.
    An audience that is missing or references itself (a cycle) never matches.
    """
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind is None:
        if "operator" not in node and "filters" not in node:
            return node
        children = node.get("filters")
        if not isinstance(children, list):
            return node
        if not children:
            return dict(_FALSE)
        operator = node.get("operator") or "and"
        return {
            "type": "group",
            "operator": operator,
            "filters": [translate_filter(c, audiences, stack) for c in children],
        }
    if kind == "all":
        return dict(_TRUE)
    if kind == "audienceMatch":
        ids = node.get("_audiences")
        if not isinstance(ids, list):
            return node
        parts: list[Any] = []
        for audience_id in ids:
            filters = audiences.get(audience_id) if isinstance(audience_id, str) else None
            if filters is None or audience_id in stack:
                parts.append(dict(_FALSE))
            else:
                parts.append(translate_filter(filters, audiences, (*stack, audience_id)))
        group = {"type": "group", "operator": "or", "filters": parts}
        return {"type": "negation", "filter": group} if node.get("comparator") == "!=" else group
    if kind == "group":
        children = node.get("filters")
        if not isinstance(children, list):
            return node
        return {**node, "filters": [translate_filter(c, audiences, stack) for c in children]}
    if kind == "negation" and "filter" in node:
        return {**node, "filter": translate_filter(node["filter"], audiences, stack)}
    return node


def audience_refs(node: Any) -> list[str]:
    """Audience ids that a filter tree references directly, in order."""
    found: list[str] = []

    def walk(n: Any) -> None:
        if isinstance(n, dict):
            if n.get("type") == "audienceMatch" and isinstance(n.get("_audiences"), list):
                found.extend(a for a in n["_audiences"] if isinstance(a, str))
            for key in ("filters", "filter"):
                child = n.get(key)
                if isinstance(child, list):
                    for c in child:
                        walk(c)
                elif isinstance(child, dict):
                    walk(child)

    walk(node)
    return found


def config_filters(targets: list[Any], reflag: Any) -> list[Any]:
    """Every filter tree of one stored configuration."""
    trees: list[Any] = [t.get("audience", {}).get("filters") for t in targets if isinstance(t, dict)]
    if isinstance(reflag, dict):
        trees += [r.get("filter") for r in reflag.get("targeting", {}).get("rules", []) if isinstance(r, dict)]
        config = reflag.get("config") or {}
        trees += [v.get("filter") for v in config.get("variants", []) if isinstance(v, dict)]
    return [t for t in trees if t is not None]


# ---------------------------------------------------------------------------------------------
# Rollouts


def rollout_percentage(rollout: Mapping[str, Any], now_ms: float) -> float:
    """DevCycle's ``getCurrentRolloutPercentage``: the share (0..1) of users let through now."""
    start = iso_ms(rollout["startDate"])
    if rollout.get("type") == "schedule":
        return 1.0 if now_ms >= start else 0.0
    start_pct = float(rollout.get("startPercentage") or 0.0)
    stages = [
        (s.get("type") == "discrete", iso_ms(s["date"]), float(s["percentage"])) for s in rollout.get("stages") or []
    ]
    current = next(((pct, date) for _, date, pct in reversed(stages) if date <= now_ms), None)
    upcoming = next(((discrete, date, pct) for discrete, date, pct in stages if date > now_ms), None)
    if current is None:
        if not start < now_ms:
            return 0.0
        current = (start_pct, start)
    cur_pct, cur_date = current
    if upcoming is None or upcoming[0]:
        return cur_pct
    progress = (now_ms - cur_date) / (upcoming[1] - cur_date)
    if progress == 0.0:
        return 0.0
    return cur_pct + (upcoming[2] - cur_pct) * progress


def bucketing_attribute(bucketing_key: str | None) -> str:
    """The Reflag context field a target buckets on."""
    if not bucketing_key or bucketing_key == "user_id":
        return "user.id"
    if bucketing_key in USER_FIELDS:
        return f"user.{bucketing_key}"
    return f"user.customData.{bucketing_key}"


def _rollout_node(key: str, attribute: str, threshold: int) -> dict[str, Any]:
    return {
        "type": "rolloutPercentage",
        "key": key,
        "partialRolloutAttribute": attribute,
        "partialRolloutThreshold": threshold,
    }


# ---------------------------------------------------------------------------------------------
# Definitions


@dataclass
class Built:
    """One feature's definition plus, for DevCycle targets, the target of each config variant."""

    definition: dict[str, Any]
    variant_targets: list[int] = field(default_factory=list)


@dataclass
class FeatureData:
    key: str
    status: str
    static_variation: str | None
    # (variation id, variation key, payload of active variables)
    variations: list[tuple[str, str, dict[str, Any]]]
    targets: list[dict[str, Any]]
    reflag: dict[str, Any] | None
    version: int


def build_definition(
    data: FeatureData, audiences: Mapping[str, Any], *, disable_passthrough: bool, now_ms: float
) -> Built:
    version = data.version
    payload_of = {vid: (vkey, payload) for vid, vkey, payload in data.variations}
    has_values = any(payload for _, _, payload in data.variations)
    definition: dict[str, Any] = {"key": data.key, "targeting": {"version": version, "rules": []}}
    built = Built(definition)
    if data.status == "complete":
        static = payload_of.get(data.static_variation or "")
        if static is not None:
            definition["targeting"]["rules"] = [{"filter": dict(_TRUE)}]
            if has_values:
                definition["config"] = {
                    "version": version,
                    "variants": [{"key": static[0], "filter": dict(_TRUE), "payload": static[1]}],
                }
        return built
    if data.reflag is not None:
        sent = data.reflag.get("targeting", {}).get("rules", [])
        definition["targeting"]["rules"] = [{"filter": translate_filter(r.get("filter"), audiences)} for r in sent]
        config = data.reflag.get("config")
        if config is not None:
            variants = []
            for v in config.get("variants", []):
                variant: dict[str, Any] = {"key": v.get("key"), "payload": v.get("payload")}
                if "filter" in v and v["filter"] is not None:
                    variant["filter"] = translate_filter(v["filter"], audiences)
                variants.append(variant)
            definition["config"] = {"version": version, "variants": variants}
        return built
    rules: list[dict[str, Any]] = []
    variants = []
    earlier: list[Any] = []
    for i, target in enumerate(data.targets):
        audience = translate_filter(target.get("audience", {}).get("filters", {}), audiences)
        target_id = str(target.get("_id", i))
        attribute = bucketing_attribute(target.get("bucketingKey"))
        gate: list[Any] = []
        if target.get("rollout"):
            pct = rollout_percentage(target["rollout"], now_ms)
            if not pct > 0:
                gate.append(dict(_FALSE))
            elif pct < 1:
                gate.append(_rollout_node(f"{target_id}_rollout", attribute, round(pct * THRESHOLD_SCALE)))
        if disable_passthrough:
            gate += [{"type": "negation", "filter": a} for a in earlier]
        earlier.append(audience)
        rules.append({"filter": {"type": "group", "operator": "and", "filters": [audience, *gate]}})
        if not has_values:
            continue
        shares = [
            (d["_variation"], float(d["percentage"]))
            for d in target.get("distribution", [])
            if d.get("_variation") in payload_of and float(d.get("percentage", 0)) > 0
        ]
        cumulative = 0.0
        for n, (variation_id, share) in enumerate(shares):
            lo = round(cumulative * THRESHOLD_SCALE)
            cumulative += share
            hi = round(cumulative * THRESHOLD_SCALE)
            bucket: list[Any] = []
            if n > 0:
                bucket.append({"type": "negation", "filter": _rollout_node(target_id, attribute, lo)})
            if n < len(shares) - 1:
                bucket.append(_rollout_node(target_id, attribute, hi))
            key, payload = payload_of[variation_id]
            variants.append(
                {
                    "key": key,
                    "filter": {"type": "group", "operator": "and", "filters": [audience, *gate, *bucket]},
                    "payload": payload,
                }
            )
            built.variant_targets.append(i)
    definition["targeting"]["rules"] = rules
    if has_values:
        definition["config"] = {"version": version, "variants": variants}
    return built


def _project_context(db: Connection, project_id: str) -> tuple[dict[str, Any], bool]:
    audiences = {
        r["id"]: _loads(r["filters"], {})
        for r in db.execute("SELECT id, filters FROM audiences WHERE project_id = ?", (project_id,))
    }
    row = db.execute("SELECT settings FROM projects WHERE id = ?", (project_id,)).fetchone()
    settings = _loads(row["settings"], {}) if row else {}
    return audiences, bool(isinstance(settings, dict) and settings.get("disablePassthroughRollouts"))


def _in(column: str, ids: list[str] | None) -> str:
    return f" AND {column} IN ({', '.join('?' * len(ids))})" if ids is not None else ""


def _variations(db: Connection, project_id: str, feature_ids: list[str] | None = None) -> dict[str, list[Any]]:
    """Per feature id (of ``feature_ids`` only, when given): its variations with the values of
    its active variables."""
    params = (project_id, *(feature_ids or ()))
    active: dict[str, set[str]] = {}
    sql = "SELECT feature_id, key FROM variables WHERE project_id = ? AND status = 'active' AND feature_id IS NOT NULL"
    for r in db.execute(sql + _in("feature_id", feature_ids), params):
        active.setdefault(r["feature_id"], set()).add(r["key"])
    out: dict[str, list[Any]] = {}
    rows = db.execute(
        "SELECT v.id, v.feature_id, v.key, v.variables FROM variations v JOIN features f ON f.id = v.feature_id "
        "WHERE f.project_id = ?" + _in("f.id", feature_ids) + " ORDER BY v.feature_id, v.position",
        params,
    )
    for r in rows:
        keys = active.get(r["feature_id"], set())
        values = _loads(r["variables"], {})
        payload = {k: v for k, v in values.items() if k in keys}
        out.setdefault(r["feature_id"], []).append((r["id"], r["key"], payload))
    return out


def _now(now_ms: float | None) -> float:
    return time.time() * 1000.0 if now_ms is None else now_ms


def environment_features(db: Connection, environment_id: str, *, now_ms: float | None = None) -> list[dict[str, Any]]:
    """``[{"key", "targeting": {"version", "rules"}, "config"?}]`` for every feature of the
    environment's project whose configuration in that environment is active."""
    return [definition for _, definition in environment_flags(db, environment_id, now_ms=now_ms)]


def environment_flags(
    db: Connection, environment_id: str, *, now_ms: float | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """:func:`environment_features` with each definition's order key: ``{created_at}/{id}``,
    which sorts the flags as the list does and does not move when other flags come and go (the
    snapshot store keeps each flag apart, in this order)."""
    flags = feature_flags(db, environment_id, now_ms=now_ms).values()
    return [(flag.order, flag.definition) for flag in sorted(flags, key=lambda f: f.order)]


@dataclass(frozen=True)
class Flag:
    """One feature's flag in one environment: its order key (:func:`environment_flags`), its
    definition, and whether the definition moves with the clock (a rollout taken at its
    percentage when built: a rebuild of the environment takes it anew)."""

    order: str
    definition: dict[str, Any]
    timed: bool

    @property
    def key(self) -> str:
        return str(self.definition["key"])


#: Feature ids per query (far below SQLite's and PostgreSQL's bound on parameters).
CHUNK = 500


def feature_flags(
    db: Connection, environment_id: str, feature_ids: Collection[str] | None = None, *, now_ms: float | None = None
) -> dict[str, Flag]:
    """The flags of the environment's features (of ``feature_ids`` only, when given) whose
    configuration there is active, by feature id; a feature id missing from the answer has no
    flag there."""
    env = db.execute("SELECT project_id FROM environments WHERE id = ?", (environment_id,)).fetchone()
    if env is None:
        return {}
    project_id = env["project_id"]
    audiences, disable_passthrough = _project_context(db, project_id)
    now = _now(now_ms)
    ids = None if feature_ids is None else sorted(feature_ids)
    out: dict[str, Flag] = {}
    for chunk in [ids] if ids is None else [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]:
        variations = _variations(db, project_id, chunk)
        rows = db.execute(
            "SELECT f.id, f.key, f.status, f.static_variation, f.created_at, c.targets, c.reflag,"
            " c.targeting_version FROM features f"
            " JOIN feature_configurations c ON c.feature_id = f.id AND c.environment_id = ?"
            " WHERE f.project_id = ? AND f.status != 'archived' AND c.status = 'active'" + _in("f.id", chunk),
            (environment_id, project_id, *(chunk or ())),
        ).fetchall()
        for r in rows:
            data = FeatureData(
                key=r["key"],
                status=r["status"],
                static_variation=r["static_variation"],
                variations=variations.get(r["id"], []),
                targets=_loads(r["targets"], []),
                reflag=_loads(r["reflag"], None),
                version=int(r["targeting_version"]),
            )
            built = build_definition(data, audiences, disable_passthrough=disable_passthrough, now_ms=now)
            definition = with_rollout_keys(built.definition, r["key"])
            out[r["id"]] = Flag(f"{r['created_at']}/{r['id']}", definition, _timed(data))
    return out


def _timed(data: FeatureData) -> bool:
    """Whether :func:`build_definition` reads the clock for this feature (DevCycle targets with
    a rollout, evaluated from the Reflag-shape definition)."""
    return data.status != "complete" and data.reflag is None and any(t.get("rollout") for t in data.targets)


def with_rollout_keys(definition: dict[str, Any], flag_key: str) -> dict[str, Any]:
    """Every ``rolloutPercentage`` filter carries its hash ``key`` (the flag key unless set), as
    Reflag's ``GET /features`` serves it: SDKs evaluating locally hash ``"{filter.key}.{value}"``
    and would otherwise hash ``"undefined.{value}"``. Only filters are touched, never payloads."""

    def keyed(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = dict(node)
        if out.get("type") == "rolloutPercentage" and "key" not in out:
            out["key"] = flag_key
        if isinstance(out.get("filters"), list):
            out["filters"] = [keyed(f) for f in out["filters"]]
        if "filter" in out:
            out["filter"] = keyed(out["filter"])
        return out

    out = dict(definition)
    targeting = out.get("targeting")
    if isinstance(targeting, dict) and isinstance(targeting.get("rules"), list):
        out["targeting"] = {**targeting, "rules": [keyed(r) for r in targeting["rules"]]}
    config = out.get("config")
    if isinstance(config, dict) and isinstance(config.get("variants"), list):
        out["config"] = {**config, "variants": [keyed(v) for v in config["variants"]]}
    return out


def feature_definition(
    db: Connection, feature_id: str, environment_id: str, *, now_ms: float | None = None
) -> Built | None:
    """The definition of one feature in one environment as configured, whatever its status
    (used to check a configuration before it is saved)."""
    f = db.execute(
        "SELECT id, project_id, key, status, static_variation FROM features WHERE id = ?", (feature_id,)
    ).fetchone()
    if f is None:
        return None
    c = db.execute(
        "SELECT status, targets, reflag, targeting_version FROM feature_configurations "
        "WHERE feature_id = ? AND environment_id = ?",
        (feature_id, environment_id),
    ).fetchone()
    audiences, disable_passthrough = _project_context(db, f["project_id"])
    data = FeatureData(
        key=f["key"],
        status=f["status"],
        static_variation=f["static_variation"],
        variations=_variations(db, f["project_id"], [feature_id]).get(feature_id, []),
        targets=_loads(c["targets"], []) if c else [],
        reflag=_loads(c["reflag"], None) if c else None,
        version=int(c["targeting_version"]) if c else 0,
    )
    return build_definition(data, audiences, disable_passthrough=disable_passthrough, now_ms=_now(now_ms))
