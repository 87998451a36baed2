"""What the edge needs to answer ``GET /release/{organisation}/{application}``, from the Airborne tables.

Resolution the edge applies to a request's ``x-dimensions`` context (a JSON object of strings):

1. Standard dimensions are read from the context as sent. Each cohort dimension's value is its
   ``rule`` applied (JSON Logic, evaluator operators) to the context: an ``if`` chain over the
   cohorts in priority order (groups by priority, then checkpoints from the highest value down),
   so the first cohort whose rule is true wins, else ``"otherwise"``.
2. A release context (``dimensions``) matches when every one of its dimensions has exactly that
   value. ``live`` is ordered by ``weight`` (sum of ``2**position`` of its dimensions; more
   specific first) then by recency: the first match is the baseline that serves the request.
3. ``experiments`` (same order) are open releases with traffic above 0% (a draft or a release
   ramped down to 0% is left out: it never shields anyone). The edge merges both lists into one
   chain, most specific first and an experiment ahead of the live release of its own weight, and
   serves the first step that takes the client (``server/release.py`` and the README state the
   rule): a client only enters an experiment whose release would otherwise be its live release.

This module also holds the pieces of cohort logic the routes share: SemVer parsing with the
evaluator's lenient rules, checkpoint ordering, rule building and rule validation.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

import evaluator
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError

OTHERWISE = "otherwise"
# Checkpoint comparators and the JSON Logic operators they compile to (lower bound), and the
# operator of the upper bound a lower checkpoint gets from the one just above it.
LOWER_OP = {"semver_gt": "jp_ver_gt", "semver_ge": "jp_ver_ge", "str_gt": "str_gt", "str_ge": "str_ge"}
UPPER_OP = {"semver_gt": "jp_ver_le", "semver_ge": "jp_ver_lt", "str_gt": "str_le", "str_ge": "str_lt"}
SNAPSHOT_FORMAT = 1

# ---------------------------------------------------------------------------------------------
# Checkpoint values: versions are read exactly as the evaluator's jp_ver_* operators read them.


def valid_version(text: str) -> bool:
    """True when ``jp_ver_*`` accepts ``text`` (one leading v/V, SemVer 2.0 or MAJOR[.MINOR])."""
    try:
        evaluator.semver_compare(text, text)
    except ValueError:
        return False
    return True


def family(comparator: str) -> str:
    return "semver" if comparator.startswith("semver_") else "str"


def compare_values(comparator: str, a: str, b: str) -> int:
    """Order two checkpoint values of one comparator family (-1, 0, 1)."""
    if family(comparator) == "semver":
        return evaluator.semver_compare(a, b)
    return (a > b) - (a < b)


# ---------------------------------------------------------------------------------------------
# Cohort rules.


def _checkpoint_order(checkpoints: Sequence[Row]) -> list[Row]:
    """Highest value first; for one value the stricter ``*_gt`` before ``*_ge``."""

    def cmp(a: Row, b: Row) -> int:
        c = compare_values(a["comparator"], a["value"], b["value"])
        if c:
            return -c
        return int(a["comparator"].endswith("_ge")) - int(b["comparator"].endswith("_ge"))

    return sorted(checkpoints, key=functools.cmp_to_key(cmp))


def ordered_cohorts(db: Connection, dimension_id: str) -> list[Row]:
    """Cohorts in evaluation order: groups by priority, then checkpoints from the top down."""
    rows = db.execute("SELECT * FROM ab_cohorts WHERE dimension_id = ? ORDER BY created_at, name", (dimension_id,))
    all_rows = list(rows)
    groups = sorted((r for r in all_rows if r["kind"] == "group"), key=lambda r: (r["priority"], r["name"]))
    checkpoints = _checkpoint_order([r for r in all_rows if r["kind"] == "checkpoint"])
    return groups + checkpoints


def cohort_definitions(depends_on: str, cohorts: Iterable[Row]) -> list[tuple[str, str, Any]]:
    """``(name, kind, json_logic)`` per cohort, in evaluation order.

    A group is ``in`` its member list. A checkpoint is its lower bound, and below the top
    checkpoint also the complement of the checkpoint just above it, so each definition stands on
    its own. String checkpoints also require the dimension to be present (a missing value would
    otherwise compare as the string "null").
    """
    var = {"var": depends_on}
    out: list[tuple[str, str, Any]] = []
    above: Row | None = None
    for row in cohorts:
        if row["kind"] == "group":
            out.append((row["name"], "group", {"in": [var, orjson.loads(row["members"])]}))
            continue
        terms: list[Any] = []
        if family(row["comparator"]) == "str":
            terms.append({"!=": [var, None]})
        terms.append({LOWER_OP[row["comparator"]]: [var, row["value"]]})
        if above is not None:
            terms.append({UPPER_OP[above["comparator"]]: [var, above["value"]]})
        out.append((row["name"], "checkpoint", terms[0] if len(terms) == 1 else {"and": terms}))
        above = row
    return out


def selection_rule(definitions: Sequence[tuple[str, str, Any]]) -> Any:
    """One JSON Logic expression whose value is the cohort name (first true wins) or ``otherwise``."""
    if not definitions:
        return OTHERWISE
    args: list[Any] = []
    for name, _, rule in definitions:
        args += [rule, name]
    args.append(OTHERWISE)
    return {"if": args}


def validate_rule(rule: Any, field: str) -> None:
    """Compile ``rule`` with the evaluator; a rule it rejects is a 400 naming ``field`` and the node."""
    try:
        evaluator.jsonlogic_apply(rule, {})
    except evaluator.RuleError as e:
        path, reason = e.path, e.reason
        raise ApiError(
            400,
            f"cohort rule does not compile: {reason}",
            details=[{"field": field + path.removeprefix("$"), "code": "invalid_rule", "message": reason}],
        ) from None
    except evaluator.EvaluatorError as e:
        raise ApiError(
            400,
            f"cohort rule does not evaluate: {e}",
            details=[{"field": field, "code": "invalid_rule", "message": str(e)}],
        ) from None


def cohort_view(db: Connection, dimension: Row) -> dict[str, Any]:
    """``{type, enum, definitions}`` of a cohort dimension (enum in priority order, then otherwise)."""
    defs = cohort_definitions(dimension["depends_on"], ordered_cohorts(db, dimension["id"]))
    return {
        "type": "string",
        "enum": [name for name, _, _ in defs] + [OTHERWISE],
        "definitions": {name: rule for name, _, rule in defs},
    }


def validate_cohort_dimension(db: Connection, dimension: Row) -> None:
    """Every cohort definition and the selection rule of ``dimension`` compile."""
    defs = cohort_definitions(dimension["depends_on"], ordered_cohorts(db, dimension["id"]))
    for name, _, rule in defs:
        validate_rule(rule, f"definitions.{name}")
    validate_rule(selection_rule(defs), "rule")


# ---------------------------------------------------------------------------------------------
# Releases.


def weight(dimensions: dict[str, Any], positions: dict[str, int]) -> int:
    return sum(2 ** positions.get(name, 0) for name in dimensions)


def live_release_ids(db: Connection, project_id: str) -> set[str]:
    """Per dimension context, the release whose experimental variant was concluded last."""
    rows = db.execute(
        "SELECT id, dimensions_key FROM ab_releases WHERE project_id = ? AND status = 'CONCLUDED'"
        " AND chosen_variant = 'experimental' ORDER BY concluded_seq DESC",
        (project_id,),
    )
    seen: dict[str, str] = {}
    for row in rows:
        seen.setdefault(row["dimensions_key"], row["id"])
    return set(seen.values())


def _release_content(row: Row) -> dict[str, Any]:
    return {
        "config": orjson.loads(row["config"]),
        "package": orjson.loads(row["package"]),
        "resources": orjson.loads(row["resources"]),
    }


def release_snapshot(db: Connection, project_id: str) -> dict[str, Any]:
    """Everything the edge needs for the project's public release route, as a JSON-able dict."""
    project = db.execute(
        "SELECT p.key, o.name AS org_name FROM projects p JOIN organisations o ON o.id = p.organisation_id"
        " WHERE p.id = ?",
        (project_id,),
    ).fetchone()
    dims = db.execute("SELECT * FROM ab_dimensions WHERE project_id = ? ORDER BY position", (project_id,)).fetchall()
    positions = {d["name"]: int(d["position"]) for d in dims}
    dimensions: list[dict[str, Any]] = []
    for d in dims:
        entry: dict[str, Any] = {"name": d["name"], "position": d["position"], "dimension_type": d["dimension_type"]}
        if d["dimension_type"] == "cohort":
            defs = cohort_definitions(d["depends_on"], ordered_cohorts(db, d["id"]))
            entry["depends_on"] = d["depends_on"]
            entry["cohorts"] = [{"name": n, "kind": k, "rule": r} for n, k, r in defs]
            entry["rule"] = selection_rule(defs)
        else:
            entry["schema"] = orjson.loads(d["schema"])
        dimensions.append(entry)

    live_ids = live_release_ids(db, project_id)
    live: list[tuple[int, int, dict[str, Any]]] = []
    experiments: list[tuple[int, int, dict[str, Any]]] = []
    for row in db.execute(
        "SELECT * FROM ab_releases WHERE project_id = ? AND status IN ('CREATED', 'INPROGRESS', 'CONCLUDED')",
        (project_id,),
    ):
        context = orjson.loads(row["dimensions"])
        w = weight(context, positions)
        if row["id"] in live_ids:
            entry = {
                "id": row["id"],
                "dimensions": context,
                "weight": w,
                **_release_content(row),
                "concluded_at": row["concluded_at"],
            }
            live.append((w, int(row["concluded_seq"]), entry))
        elif row["status"] in ("CREATED", "INPROGRESS") and row["traffic_percentage"] > 0:
            entry = {
                "id": row["id"],
                "experiment_id": row["id"],
                "dimensions": context,
                "weight": w,
                "status": row["status"],
                "traffic_percentage": row["traffic_percentage"],
                "variants": variants(row["id"]),
                "experimental": _release_content(row),
                "created_at": row["created_at"],
            }
            experiments.append((w, int(row["seq"]), entry))
    live.sort(key=lambda t: (-t[0], -t[1]))
    experiments.sort(key=lambda t: (-t[0], -t[1]))
    return {
        "format": SNAPSHOT_FORMAT,
        "organisation": project["org_name"] if project else None,
        "application": project["key"] if project else None,
        "dimensions": dimensions,
        "live": [e for _, _, e in live],
        "experiments": [e for _, _, e in experiments],
    }


def variants(release_id: str) -> list[dict[str, str]]:
    return [
        {"id": f"{release_id}-control", "variant_type": "control"},
        {"id": f"{release_id}-experimental", "variant_type": "experimental"},
    ]
