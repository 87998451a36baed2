"""Our benchmark flags in each peer's own format, from the arms of :mod:`bench.peers.rules`.

* :func:`unleash`: an Unleash client-features document (``version`` 2) for Unleash Edge's
  offline bootstrap file. One feature per flag; one strategy per arm, in order: ``default``
  without a rollout, ``flexibleRollout`` (``groupId`` = flag key) with one; tests are
  constraints; a config variant is a strategy variant (weight 1000, JSON payload).
* :func:`flagd`: a flagd flag-definition document. One flag per flag; an ``if`` chain over the
  arms in JSON Logic with flagd's ``sem_ver`` and ``fractional``; ``defaultVariant`` ``off``.
* :func:`gofeatureflag`: a go-feature-flag file (JSON). One flag per flag; one targeting rule
  per arm in the relay proxy's native query language (nikunjy/rules), a percentage split for an
  arm with rollouts; the first arm without tests is the ``defaultRule`` (else ``off``).

Flags without config are boolean (variants ``on``/``off``). A flag with config is an object
flag in flagd and go-feature-flag, variants ``off``, each config key and ``on``, each value
``{"enabled": bool, "payload": <config payload or null>}`` (those formats type a flag's values
and have no payload beside a boolean), and carries the variant key and payload in Unleash.

Approximations (README "Peers" lists the same; the agreement check shows none changes an answer
on the flags without rollouts, for the contexts the benchmark sends):

* Rollouts hash differently in every peer (Unleash: murmur3 of ``groupId:value``, flagd:
  murmur3 of the bucketing string, go-feature-flag: its own hash of flag key + targeting key),
  so *which* contexts pass a rollout differs; the share passing is the same, except: Unleash
  rolls out whole percents (threshold / 1000 rounded); an arm with two rollouts (a rollout
  flag's config variant ``b``) becomes one rollout in Unleash and go-feature-flag, of the
  smaller share when both are on one attribute (Reflag hashes both the same way, so the
  passing contexts nest), else of the product; go-feature-flag buckets every rollout by the
  targeting key (= ``user.id``), also those on ``company.id``; a go-feature-flag rule cannot
  fall through after its percentage split, so the share that misses goes to the outcome of
  the next arm whose tests it implies and that has no rollout, else ``off``.
* ``CONTAINS`` is case-insensitive in Reflag and in Unleash (``caseInsensitive``), but
  case-sensitive in flagd and go-feature-flag (our contexts' e-mails are lower case).
* ``DATE_AFTER``/``DATE_BEFORE`` compare dates in Reflag (inclusive) and in Unleash (strict,
  RFC 3339 values only: the benchmark sends ``…T00:00:00.000Z`` timestamps); flagd and
  go-feature-flag have no date operator, so they compare the ISO-8601 strings, which orders
  UTC timestamps of one form correctly.
* ``SET`` is "present and not empty" everywhere; Unleash writes it as two constraints, negated
  (``NOT_SET``) only as "absent" (not used by our sets).
* ``sem_ver`` ``>=`` is Unleash's ``SEMVER_LT`` inverted (true for a missing or invalid
  version, where Reflag says false; our contexts always send a valid one).
* ``user.id`` is Unleash's ``userId`` (its stickiness); every other attribute is an Unleash
  context property named by its dotted path, sent as a string.
"""

from __future__ import annotations

import json
from typing import Any

from bench.peers.rules import OFF, ON, ROLLOUT_SCALE, Arm, Cond, PeerFlag, Rollout, Term, arms

# --- Unleash ---------------------------------------------------------------------------------

UNLEASH_USER_ID = "userId"
_UNLEASH_SEMVER = {
    ">=": ("SEMVER_LT", True),
    ">": ("SEMVER_GT", False),
    "<": ("SEMVER_LT", False),
    "<=": ("SEMVER_GT", True),
    "=": ("SEMVER_EQ", False),
}


def unleash_field(path: str) -> str:
    """The Unleash context name of one of our attributes."""
    return UNLEASH_USER_ID if path == "user.id" else path


def unleash_date(value: str) -> str:
    """A Reflag date value as the RFC 3339 timestamp Unleash parses (midnight UTC for a day)."""
    return f"{value}T00:00:00.000Z" if len(value) == 10 else value


def _unleash_constraints(cond: Cond) -> list[dict[str, Any]]:
    name = unleash_field(cond.field)

    def one(operator: str, inverted: bool = False, **rest: Any) -> dict[str, Any]:
        c: dict[str, Any] = {"contextName": name, "operator": operator, "inverted": inverted != cond.negated}
        c.setdefault("caseInsensitive", False)
        c.update(rest)
        return c

    match cond.op:
        case "is" | "any_of":
            return [one("IN", values=list(cond.values))]
        case "contains":
            return [one("STR_CONTAINS", values=list(cond.values), caseInsensitive=True)]
        case "gt":
            return [one("NUM_GT", value=cond.values[0])]
        case "lt":
            return [one("NUM_LT", value=cond.values[0])]
        case "date_after":
            return [one("DATE_AFTER", value=unleash_date(cond.values[0]))]
        case "date_before":
            return [one("DATE_BEFORE", value=unleash_date(cond.values[0]))]
        case "set" if not cond.negated:
            return [one("STR_STARTS_WITH", values=[""]), one("NOT_IN", values=[""])]
        case "set":
            return [one("STR_STARTS_WITH", values=[""])]
        case "is_true" | "is_false":
            return [one("IN", values=["true" if cond.op == "is_true" else "false"])]
        case "semver":
            comparator, version = cond.values
            operator, inverted = _UNLEASH_SEMVER[comparator]
            return [one(operator, inverted, value=version)]
    raise ValueError(f"no Unleash constraint for {cond!r}")


def rollout_share(rollouts: tuple[Rollout, ...]) -> float:
    """The share (0..1) of contexts that pass every one of ``rollouts`` of one flag.

    Reflag buckets a flag's rollouts by ``"{flagKey}.{value}"``, so two rollouts of one flag on
    one attribute pass together up to the smaller threshold; rollouts on different attributes
    are independent."""
    smallest: dict[str, int] = {}
    for r in rollouts:
        smallest[r.attribute] = min(smallest.get(r.attribute, ROLLOUT_SCALE), min(max(r.threshold, 0), ROLLOUT_SCALE))
    share = 1.0
    for threshold in smallest.values():
        share *= threshold / ROLLOUT_SCALE
    return share


def _unleash_strategy(flag: PeerFlag, arm: Arm) -> dict[str, Any]:
    constraints = [c for cond in arm.term.conds for c in _unleash_constraints(cond)]
    strategy: dict[str, Any] = {"name": "default", "parameters": {}, "constraints": constraints}
    if arm.term.rollouts:
        stickiness = unleash_field(arm.term.rollouts[0].attribute)
        percent = round(rollout_share(arm.term.rollouts) * 100)
        strategy["name"] = "flexibleRollout"
        strategy["parameters"] = {"rollout": str(percent), "stickiness": stickiness, "groupId": flag.key}
    if arm.outcome != ON:
        variant: dict[str, Any] = {
            "name": arm.outcome,
            "weight": 1000,
            "weightType": "variable",
            "stickiness": "default",
        }
        payload = (flag.payloads or {}).get(arm.outcome)
        if payload is not None:
            variant["payload"] = {"type": "json", "value": json.dumps(payload)}
        strategy["variants"] = [variant]
    return strategy


def unleash(flags: list[dict[str, Any]]) -> dict[str, Any]:
    """An Unleash client-features document (Edge's ``--bootstrap-file``) for ``flags``."""
    features = []
    for flag in map(arms, flags):
        features.append(
            {
                "name": flag.key,
                "type": "release",
                "project": "default",
                "enabled": True,
                "stale": False,
                "impressionData": False,
                "strategies": [_unleash_strategy(flag, arm) for arm in flag.arms],
                "variants": [],
            }
        )
    return {"version": 2, "features": features}


# --- flagd -----------------------------------------------------------------------------------


def _number(value: str) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _logic_cond(cond: Cond) -> Any:
    var = {"var": cond.field}
    rule: Any
    match cond.op:
        case "is":
            rule = {"==": [var, cond.values[0]]}
        case "any_of":
            rule = {"in": [var, list(cond.values)]}
        case "contains":
            rule = {"in": [cond.values[0], var]}
        case "gt":
            rule = {">": [var, _number(cond.values[0])]}
        case "lt":
            rule = {"<": [var, _number(cond.values[0])]}
        case "date_after":
            rule = {">=": [var, cond.values[0]]}
        case "date_before":
            rule = {"<=": [var, cond.values[0]]}
        case "set":
            rule = {"!!": [var]}
        case "is_true" | "is_false":
            rule = {"==": [var, cond.op == "is_true"]}
        case "semver":
            rule = {"sem_ver": [var, cond.values[0], cond.values[1]]}
        case _:
            raise ValueError(f"no JSON Logic for {cond!r}")
    return {"!": rule} if cond.negated else rule


def _logic_rollout(key: str, rollout: Rollout) -> Any:
    threshold = min(max(rollout.threshold, 0), ROLLOUT_SCALE)
    if threshold in (0, ROLLOUT_SCALE):
        return threshold == ROLLOUT_SCALE
    bucket = {"cat": [key, ".", {"var": rollout.attribute}]}
    return {"==": [{"fractional": [bucket, ["in", threshold], ["out", ROLLOUT_SCALE - threshold]]}, "in"]}


def _logic_term(key: str, term: Term) -> Any:
    parts = [_logic_cond(c) for c in term.conds] + [_logic_rollout(key, r) for r in term.rollouts]
    if not parts:
        return True
    return parts[0] if len(parts) == 1 else {"and": parts}


def object_variants(flag: PeerFlag) -> dict[str, Any]:
    """A config flag's variants as flagd / go-feature-flag object values."""
    payloads = flag.payloads or {}
    return {name: {"enabled": name != OFF, "payload": payloads.get(name)} for name in flag.outcomes}


def _flagd_flag(flag: PeerFlag) -> dict[str, Any]:
    variants = object_variants(flag) if flag.payloads is not None else {ON: True, OFF: False}
    out: dict[str, Any] = {"state": "ENABLED", "variants": variants, "defaultVariant": OFF}
    if flag.arms:
        chain: list[Any] = []
        for arm in flag.arms:
            chain += [_logic_term(flag.key, arm.term), arm.outcome]
        out["targeting"] = {"if": [*chain, OFF]}
    return out


def flagd(flags: list[dict[str, Any]]) -> dict[str, Any]:
    """A flagd flag-definition document (``--uri file:…``) for ``flags``."""
    return {"flags": {flag.key: _flagd_flag(flag) for flag in map(arms, flags)}}


# --- go-feature-flag -------------------------------------------------------------------------


def _query_cond(cond: Cond) -> str:
    field = cond.field
    match cond.op:
        case "is":
            q = f"{field} eq {json.dumps(cond.values[0])}"
        case "any_of":
            q = f"{field} in [{','.join(json.dumps(v) for v in cond.values)}]"
        case "contains":
            q = f"{field} co {json.dumps(cond.values[0])}"
        case "gt":
            q = f"{field} gt {_number(cond.values[0])}"
        case "lt":
            q = f"{field} lt {_number(cond.values[0])}"
        case "date_after":
            q = f"{field} ge {json.dumps(cond.values[0])}"
        case "date_before":
            q = f"{field} le {json.dumps(cond.values[0])}"
        case "set":
            q = f'({field} pr) and ({field} ne "")'
        case "is_true" | "is_false":
            q = f"{field} eq {'true' if cond.op == 'is_true' else 'false'}"
        case "semver":
            comparator, version = cond.values
            q = f"{field} {'eq' if comparator == '=' else comparator} {version}"
        case _:
            raise ValueError(f"no go-feature-flag query for {cond!r}")
    return f"not ({q})" if cond.negated else q


def _query(term: Term) -> str | None:
    if not term.conds:
        return None
    if len(term.conds) == 1:
        return _query_cond(term.conds[0])
    return " and ".join(f"({_query_cond(c)})" for c in term.conds)


def _fallback(flag: PeerFlag, index: int) -> str:
    """What a context that misses arm ``index``'s split gets: the outcome of the next arm that
    surely matches it (its tests are among this arm's, no rollout), else ``off``."""
    conds = set(flag.arms[index].term.conds)
    for arm in flag.arms[index + 1 :]:
        if not arm.term.rollouts and set(arm.term.conds) <= conds:
            return arm.outcome
    return OFF


def _gff_rules(flag: PeerFlag) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The targeting rules and the default rule: every rule needs a query, so the first arm
    without tests becomes the default rule (the arms after it could only be reached by falling
    through a split, which go-feature-flag does not do)."""
    rules: list[dict[str, Any]] = []
    for i, arm in enumerate(flag.arms):
        rule: dict[str, Any] = {}
        share = rollout_share(arm.term.rollouts)
        fallback = _fallback(flag, i)
        if share == 1 or fallback == arm.outcome:
            rule["variation"] = arm.outcome
        elif share == 0:
            rule["variation"] = fallback
        else:
            # Percent with the relay proxy's precision (thousandths); the two shares add to 100.
            percent = round(share * 100, 3)
            rule["percentage"] = {arm.outcome: percent, fallback: round(100 - percent, 3)}
        query = _query(arm.term)
        if query is None:
            return rules, rule
        if rule != {"variation": OFF}:
            rules.append({"name": f"arm-{i}", "query": query, **rule})
    return rules, {"variation": OFF}


def gofeatureflag(flags: list[dict[str, Any]]) -> dict[str, Any]:
    """A go-feature-flag flag file (JSON format) for ``flags``."""
    out: dict[str, Any] = {}
    for flag in map(arms, flags):
        variations = object_variants(flag) if flag.payloads is not None else {ON: True, OFF: False}
        rules, default = _gff_rules(flag)
        entry: dict[str, Any] = {"variations": variations, "defaultRule": default}
        if rules:
            entry["targeting"] = rules
        out[flag.key] = entry
    return out
