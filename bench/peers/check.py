"""Do the peers answer what we answer? Checked before any timing, on the same contexts.

Every server's answer is reduced to one :class:`Outcome` per flag (on or off, and the config
variant when on), then compared with ours on the flags whose answer no rollout decides: a
flag's on/off when its targeting has no rollout, its variant when moreover every config
variant up to ours has none (rollouts hash differently in every product, see
:mod:`bench.peers.translate`). Anything else must be equal; a flag missing from an OFREP answer
or answered with an error is a disagreement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.peers.rules import OFF, ON, has_rollout

UNLEASH_NO_VARIANT = "disabled"


@dataclass(frozen=True)
class Outcome:
    enabled: bool
    variant: str | None = None  # a config variant key; None when off or on without one


Answer = Mapping[str, Outcome | None]  # flag key → outcome, None for an error answer


def ofrep_outcome(item: Mapping[str, Any]) -> Outcome | None:
    """One OFREP evaluation (``value`` boolean, or an object with ``enabled``; ``variant``)."""
    if "errorCode" in item:
        return None
    value = item.get("value")
    enabled = bool(value.get("enabled")) if isinstance(value, dict) else value is True
    variant = item.get("variant")
    keyed = isinstance(variant, str) and variant not in (ON, OFF)
    return Outcome(enabled, variant if enabled and keyed else None)


def ofrep_bulk(body: Mapping[str, Any]) -> dict[str, Outcome | None]:
    """An OFREP bulk answer ``{"flags": [...]}``."""
    return {item["key"]: ofrep_outcome(item) for item in body.get("flags", [])}


def unleash_toggle(toggle: Mapping[str, Any]) -> Outcome:
    """One toggle of Unleash's frontend API (``enabled``, ``variant.name``)."""
    enabled = bool(toggle.get("enabled"))
    variant = (toggle.get("variant") or {}).get("name")
    keyed = enabled and isinstance(variant, str) and variant != UNLEASH_NO_VARIANT
    return Outcome(enabled, variant if keyed else None)


def unleash_bulk(body: Mapping[str, Any], keys: list[str]) -> dict[str, Outcome | None]:
    """Unleash's ``/api/frontend`` answer, which lists only the enabled toggles: the others of
    ``keys`` are off."""
    listed = {t["name"]: unleash_toggle(t) for t in body.get("toggles", [])}
    return {key: listed.get(key, Outcome(False)) for key in keys}


def reflag_evaluated(body: Mapping[str, Any]) -> dict[str, Outcome | None]:
    """Our ``/features/evaluated`` answer (``isEnabled``, ``config.key``)."""
    out: dict[str, Outcome | None] = {}
    for key, f in body.get("features", {}).items():
        enabled = bool(f.get("isEnabled"))
        config = f.get("config") or {}
        out[key] = Outcome(enabled, config.get("key") if enabled else None)
    return out


@dataclass(frozen=True)
class Checked:
    """Which part of a flag's answer no rollout decides, given our outcome."""

    enabled: bool
    variant: bool


def checked(flag: Mapping[str, Any], ours: Outcome) -> Checked:
    if any(has_rollout(rule["filter"]) for rule in flag["targeting"]["rules"]):
        return Checked(False, False)
    if not ours.enabled or "config" not in flag:
        return Checked(True, True)
    decided = True
    for variant in flag["config"]["variants"]:
        decided = decided and not has_rollout(variant["filter"])
        if variant["key"] == ours.variant:
            break
    return Checked(True, decided)


@dataclass(frozen=True)
class Disagreement:
    key: str
    ours: Outcome | None
    theirs: Outcome | None


@dataclass(frozen=True)
class Agreement:
    compared: int  # flags whose on/off was compared
    disagreements: list[Disagreement]


def compare(flags: list[dict[str, Any]], ours: Answer, theirs: Answer, only: set[str] | None = None) -> Agreement:
    """``theirs`` against ``ours`` on ``flags`` (restricted to ``only`` keys if given)."""
    compared = 0
    bad: list[Disagreement] = []
    for flag in flags:
        key = flag["key"]
        if only is not None and key not in only:
            continue
        mine, other = ours.get(key), theirs.get(key)
        if mine is None:
            bad.append(Disagreement(key, None, other))
            continue
        what = checked(flag, mine)
        if not what.enabled:
            continue
        compared += 1
        if other is None or other.enabled != mine.enabled or (what.variant and other.variant != mine.variant):
            bad.append(Disagreement(key, mine, other))
    return Agreement(compared, bad)
