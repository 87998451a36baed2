"""Our benchmark flags as ordered *arms*, the shape every peer's format can express.

A Reflag flag is on when its targeting filter matches; a flag with a ``config`` then carries
the first config variant whose filter matches (when none does, the flag is on without one). Each
peer's format is a list of conditions tried in order (Unleash strategies, go-feature-flag rules,
a flagd ``if`` chain), so :func:`arms` rewrites a flag into that form once, for all translators:

* the targeting filter goes to disjunctive normal form: ``group`` / ``negation`` nodes become a
  list of *terms*, each a conjunction of context tests (:class:`Cond`, possibly negated) and
  percentage rollouts (:class:`Rollout`); a negation is pushed down to the tests (De Morgan);
* a flag without config has one arm per term, with outcome ``on``;
* a flag with config has, for each variant in order, one arm per pair (targeting term, variant
  filter term) with the variant's key as outcome, then one ``on`` arm per targeting term.

The first arm whose tests hold and whose rollouts pass decides; no arm → ``off``. This is
exactly Reflag's meaning, rollouts included (each rollout is an independent bucket test).

Not expressible, so refused with :class:`Unsupported` (none occurs in W1, W2 or the scale sets):
a negated rollout, DevCycle user filters other than ``country`` with ``=``, JSON Logic other than
``sem_ver`` on one attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product
from typing import Any

ON = "on"
OFF = "off"
# A rollout's threshold is in thousandths of a percent: 0..100,000 (Reflag's partialRolloutThreshold).
ROLLOUT_SCALE = 100_000

# Reflag context operators → (our test, negated).
_OPERATORS: dict[str, tuple[str, bool]] = {
    "IS": ("is", False),
    "IS_NOT": ("is", True),
    "ANY_OF": ("any_of", False),
    "NOT_ANY_OF": ("any_of", True),
    "CONTAINS": ("contains", False),
    "NOT_CONTAINS": ("contains", True),
    "GT": ("gt", False),
    "LT": ("lt", False),
    "DATE_AFTER": ("date_after", False),
    "DATE_BEFORE": ("date_before", False),
    "SET": ("set", False),
    "NOT_SET": ("set", True),
    "IS_TRUE": ("is_true", False),
    "IS_FALSE": ("is_false", False),
}
SEMVER_COMPARATORS = (">=", ">", "<=", "<", "=")


class Unsupported(ValueError):
    """A rule no peer format can express faithfully."""


@dataclass(frozen=True)
class Cond:
    """One test of a context attribute (``field`` is the nested path, e.g. ``company.plan``).

    ``op`` is one of ``is``, ``any_of``, ``contains``, ``gt``, ``lt``, ``date_after``,
    ``date_before``, ``set``, ``is_true``, ``is_false`` (Reflag's operators, negations folded
    into ``negated``) or ``semver`` (``values`` = comparator, version)."""

    field: str
    op: str
    values: tuple[str, ...]
    negated: bool = False

    def negate(self) -> Cond:
        return replace(self, negated=not self.negated)


@dataclass(frozen=True)
class Rollout:
    """Passes for ``threshold`` / 100,000 of the values of ``attribute`` (a nested path)."""

    attribute: str
    threshold: int


@dataclass(frozen=True)
class Term:
    """A conjunction: every ``conds`` test holds and every rollout passes."""

    conds: tuple[Cond, ...] = ()
    rollouts: tuple[Rollout, ...] = ()

    def __and__(self, other: Term) -> Term:
        return Term(self.conds + other.conds, self.rollouts + other.rollouts)


@dataclass(frozen=True)
class Arm:
    term: Term
    outcome: str


@dataclass(frozen=True)
class PeerFlag:
    """A flag as arms; ``payloads`` maps each config variant key to its payload (``None``
    without config)."""

    key: str
    arms: tuple[Arm, ...]
    payloads: dict[str, Any] | None

    @property
    def outcomes(self) -> list[str]:
        """Every outcome the flag can have, ``off`` first."""
        return [OFF, *(self.payloads or {}), ON]


def _cond(filter_: dict[str, Any]) -> Cond:
    operator = filter_["operator"]
    if operator not in _OPERATORS:
        raise Unsupported(f"context operator {operator!r}")
    op, negated = _OPERATORS[operator]
    return Cond(filter_["field"], op, tuple(str(v) for v in filter_.get("values", [])), negated)


def _devcycle_user(filter_: dict[str, Any]) -> Cond:
    # Our evaluator reads a DevCycle user filter from context.user (DESIGN §5, devcycle_user).
    if filter_.get("subType") == "country" and filter_.get("comparator") == "=":
        return Cond("user.country", "any_of", tuple(filter_["values"]))
    raise Unsupported(f"DevCycle user filter {filter_.get('subType')!r} {filter_.get('comparator')!r}")


def _semver(rule: dict[str, Any]) -> Cond:
    args = rule.get("sem_ver") if len(rule) == 1 else None
    if not isinstance(args, list) or len(args) != 3:
        raise Unsupported(f"JSON Logic rule {rule!r}")
    var, comparator, version = args
    if not (isinstance(var, dict) and set(var) == {"var"} and comparator in SEMVER_COMPARATORS):
        raise Unsupported(f"JSON Logic rule {rule!r}")
    return Cond(str(var["var"]), "semver", (comparator, str(version)))


def dnf(filter_: dict[str, Any], negated: bool = False) -> list[Term]:
    """``filter_`` (negated if asked) as a disjunction of terms; ``[]`` never matches."""
    kind = filter_["type"]
    if kind == "constant":
        return [Term()] if bool(filter_["value"]) != negated else []
    if kind == "negation":
        return dnf(filter_["filter"], not negated)
    if kind == "group":
        parts = [dnf(f, negated) for f in filter_["filters"]]
        conjunctive = (filter_["operator"] == "and") != negated
        if not conjunctive:
            return [t for part in parts for t in part]
        terms = []
        for combo in product(*parts):
            term = Term()
            for t in combo:
                term = term & t
            terms.append(term)
        return terms
    if kind == "rolloutPercentage":
        if negated:
            raise Unsupported("a negated rollout")
        return [Term(rollouts=(Rollout(filter_["partialRolloutAttribute"], int(filter_["partialRolloutThreshold"])),))]
    if kind == "context":
        cond = _cond(filter_)
    elif kind == "user":
        cond = _devcycle_user(filter_)
    elif kind == "jsonLogic":
        cond = _semver(filter_["rule"])
    else:
        raise Unsupported(f"filter type {kind!r}")
    return [Term(conds=(cond.negate() if negated else cond,))]


def arms(flag: dict[str, Any]) -> PeerFlag:
    """A flag of :mod:`bench.datasets` (``key``, ``targeting.rules``, maybe ``config``) as arms."""
    targeting = [t for rule in flag["targeting"]["rules"] for t in dnf(rule["filter"])]
    config = flag.get("config")
    if config is None:
        return PeerFlag(flag["key"], tuple(Arm(t, ON) for t in targeting), None)
    out: list[Arm] = []
    payloads: dict[str, Any] = {}
    for variant in config["variants"]:
        payloads[variant["key"]] = variant.get("payload")
        for t, v in product(targeting, dnf(variant["filter"])):
            out.append(Arm(t & v, variant["key"]))
    out.extend(Arm(t, ON) for t in targeting)
    return PeerFlag(flag["key"], tuple(out), payloads)


def has_rollout(filter_: dict[str, Any]) -> bool:
    """Whether a rollout decides part of ``filter_`` (its answer depends on a bucket hash)."""
    if filter_["type"] == "rolloutPercentage":
        return True
    if filter_["type"] == "negation":
        return has_rollout(filter_["filter"])
    if filter_["type"] == "group":
        return any(has_rollout(f) for f in filter_["filters"])
    return False
