"""A patched snapshot (``Snapshot.patch``, issue 21) keeps what the other features add to a
compiled snapshot: its own evaluation counts, indexed by its own flag positions (issue 18), the
DevCycle overrides of the shared DevCycle section (issue 18), and the rule that DevCycle-decided
flags are remote-only for ``GET /features``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

import evaluator
from tests.evaluator.test_devcycle_edge import CONFIG, NOW, document


def entry(order: str, definition: dict[str, Any]) -> bytes:
    return orjson.dumps({"project": "p", "order": order, "definition": definition})


def constant(key: str, value: bool) -> dict[str, Any]:
    return {"key": key, "targeting": {"version": 1, "rules": [{"filter": {"type": "constant", "value": value}}]}}


def drained(snapshot: evaluator.Snapshot) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for feature, variation, n in snapshot.drain_counts():
        out[feature, variation] += n
    return out


def test_a_patched_snapshot_counts_afresh_by_its_own_flag_positions() -> None:
    only_u1 = {"filter": {"type": "context", "field": "user.id", "operator": "IS", "values": ["u1"]}}
    c = {"key": "c", "targeting": {"version": 1, "rules": [only_u1]}}
    old = evaluator.Snapshot.assemble(b"{}", [entry("1", constant("a", True)), entry("3", c)])
    old.evaluate_all({"user": {"id": "u2"}})
    # "b" lands between "a" and "c": "c" moves from position 1 to 2.
    new = old.patch([entry("2", constant("b", False))], [])
    assert new.flag_keys() == ["a", "b", "c"]
    assert new.drain_counts() == []
    new.evaluate_all({"user": {"id": "u2"}})
    new.evaluate_flag("c", {"user": {"id": "u1"}})
    assert drained(new) == {("a", "on"): 1, ("b", "off"): 1, ("c", "off"): 1, ("c", "on"): 1}
    # The old snapshot kept its own counters (requests in flight on it count there).
    assert drained(old) == {("a", "on"): 1, ("c", "off"): 1}


def overridden(snapshot: evaluator.Snapshot, key: str) -> tuple[str, str]:
    result = snapshot.evaluate_flag(key, {"user": {"id": "qa", "country": "nowhere"}}, now_ms=NOW)
    assert result is not None
    return str(result["reason"]), result["variant"]


def test_devcycle_overrides_and_remote_only_survive_a_patch() -> None:
    feature = CONFIG["features"][0]
    variation = feature["variations"][-1]
    overrides = {"qa": {feature["_id"]: variation["_id"]}}
    doc = document(CONFIG, devcycleOverrides=overrides)
    extras = orjson.dumps({k: v for k, v in doc.items() if k != "features"})
    entries = [entry(f"{i:03}", f) for i, f in enumerate(doc["features"])]
    old = evaluator.Snapshot.assemble(extras, entries)
    assert overridden(old, feature["key"]) == ("OVERRIDE", variation["key"])

    new = old.patch([entry("999", constant("zz", True))], [doc["features"][1]["key"]])
    whole = evaluator.Snapshot(orjson.dumps({**doc, "features": [*doc["features"][:1], *doc["features"][2:]]}))
    assert overridden(new, feature["key"]) == ("OVERRIDE", variation["key"])

    decided = {f["key"] for f in doc["features"][:1] + doc["features"][2:]}
    assert {key for key, _ in new.remote_only()} == decided
    assert {key for key, _ in whole.remote_only()} == decided
    stored = [entry("999", constant("zz", True)), *entries[:1], *entries[2:]]
    assert [f["key"] for f in orjson.loads(new.local_definitions_json(stored) or b"null")] == ["zz"]
