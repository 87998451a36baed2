"""JSON Logic bombs and rule compile bombs submitted through the admin API (the Reflag/DevCycle
feature configuration route ``PATCH /v1/projects/{p}/features/{f}/configurations``).

Each is either refused with a 400 that names the problem and the field, before anything is
published, or accepted, compiled and then evaluated within the evaluator's budget
(2,000,000 steps and 1 MiB of built values per flag evaluation; a rule over it does not match):
the edge keeps answering ``/features/evaluated`` for the bombed environment in well under a
second, and other environments on the same workers keep answering too.

Added with this suite: the control plane evaluates every JSON Logic node once on an empty context
when it is submitted (``control_plane/routes/devcycle/common.py``, ``_trial_evaluation``) and
refuses one that exhausts the budget there (400 ``too_expensive`` naming ``...filter.rule``).
Bombs gated on the context still get in and cost up to the budget (~20-40 ms here) per flag per
SDK request, on the worker's event loop: the budget is per flag, not per request, so many such
flags in one environment add up (a limit per request belongs in the evaluator).

Where else: the evaluator's own limits (deep rules, budget, huge arrays) in
``tests/evaluator/test_safety.py``; stored-JSON depth in
``tests/control_plane/test_bad_input_regressions.py``.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import httpx
import pytest

from tests.security.checks import assert_error_body, workers_unharmed
from tests.security.conftest import World
from tests.security.rawhttp import wait_until

BIG = {"merge": [[0] * 1000] * 9}  # 9000 values: under the 20,000-value bound on stored JSON


def _nest(op: str, depth: int, leaf: Any) -> Any:
    node = leaf
    for _ in range(depth):
        node = {op: [node]}
    return node


def _negations(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "constant", "value": True}
    for _ in range(depth):
        node = {"type": "negation", "filter": node}
    return node


def _logic(rule: Any) -> list[dict[str, Any]]:
    return [{"filter": {"type": "jsonLogic", "rule": rule}}]


REFUSED: dict[str, tuple[list[dict[str, Any]], str, str]] = {
    # name: (rules, words the message must contain, the field it must name)
    "deep JSON Logic": (_logic(_nest("!", 100, True)), "deeper than 64", "targeting.rules.0.filter"),
    "deep negations": ([{"filter": _negations(100)}], "deeper than 64", "targeting.rules.0.filter"),
    "10k-node group": (
        [
            {
                "filter": {
                    "type": "group",
                    "operator": "or",
                    "filters": [
                        {
                            "type": "group",
                            "operator": "or",
                            "filters": [
                                {"type": "context", "field": "user.id", "operator": "IS", "values": [f"u{i}-{j}"]}
                                for j in range(1000)
                            ],
                        }
                        for i in range(10)
                    ],
                }
            }
        ],
        "more than 20000 JSON values",
        "targeting.rules.0.filter",
    ),
    "5400-node group": (
        [
            {
                "filter": {
                    "type": "group",
                    "operator": "or",
                    "filters": [
                        {"type": "group", "operator": "or", "filters": [{"type": "constant", "value": False}] * 900}
                        for _ in range(6)
                    ],
                }
            }
        ],
        "more than 5000 nodes",
        "targeting.rules[0].filter",
    ),
    "25k-value array": (
        _logic({"in": [{"var": "user.id"}, list(range(25_000))]}),
        "more than 20000",
        "targeting.rules.0.filter",
    ),
    "1001 rules": ([{"filter": {"type": "constant", "value": False}}] * 1001, "at most 1000", "targeting.rules"),
    "unknown operator": (_logic({"explode": [1]}), "explode", "targeting.rules[0].filter.rule"),
}

BOMBS: dict[str, Any] = {
    "map of map over 9000x9000": {"map": [BIG, {"map": [BIG, {"var": ""}]}]},
    "reduce building a string": {"reduce": [BIG, {"cat": [{"var": "accumulator"}, "xxxxxxxxxx"]}, ""]},
    "merge of 9000 arrays of 1000": {"merge": {"map": [BIG, [0] * 1000]}},
    "some of some": {"some": [BIG, {"some": [BIG, {"==": [{"var": ""}, 1]}]}]},
    "filter of all": {"filter": [BIG, {"all": [BIG, {"==": [{"var": ""}, 0]}]}]},
}
# Bombs that only go off when the request's context has a user.id: an empty-context trial
# evaluation cannot see them, so they are accepted, and then each SDK request spends the budget.
ACCEPTED: dict[str, Any] = {
    f"{name}, gated on user.id": {"if": [{"var": "user.id"}, rule, False]} for name, rule in BOMBS.items()
}
ACCEPTED["10k-node or"] = {"or": [{"==": [{"var": "user.id"}, f"u{i}"]} for i in range(3000)]}
ACCEPTED["deep but allowed"] = _nest("!", 28, {"var": "user.id"})


@pytest.fixture(scope="module")
def bombs(world: World) -> dict[str, str]:
    r = world.admin.post("/v1/projects", json={"name": "Bombs", "key": "bombs"}, headers=world.auth)
    assert r.status_code == 201, r.text
    return world.environment("bombs", "prod")


def _configure(world: World, flag: str, rules: list[dict[str, Any]]) -> httpx.Response:
    return world.flag("bombs", flag, "prod", rules)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_a_400_naming_the_problem(world: World, bombs: dict[str, str], name: str) -> None:
    rules, words, field = REFUSED[name]
    t0 = time.monotonic()
    r = _configure(world, "refused", rules)
    took = time.monotonic() - t0
    assert r.status_code == 400, (name, r.text[:500])
    error = assert_error_body(r.content, r.status_code, "devcycle")  # a DevCycle route
    assert error["code"] == "validation_failed", error
    text = error["message"] + " " + " ".join(d["message"] + " " + d["field"] for d in error["details"])
    assert words in text, (name, error)
    assert any(d["field"].startswith(field) for d in error["details"]), (name, error["details"])
    assert took < 10, f"{name}: the admin API took {took:.1f} s to refuse it"


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_that_always_go_off_are_refused(world: World, bombs: dict[str, str], name: str) -> None:
    """The control plane evaluates each JSON Logic rule once on an empty context when it is
    submitted; one that exhausts the evaluator's budget there is refused, naming the node."""
    t0 = time.monotonic()
    r = _configure(world, "static-bomb", _logic(BOMBS[name]))
    assert r.status_code == 400, (name, r.text[:500])
    detail = assert_error_body(r.content, r.status_code, "devcycle")["details"][0]  # a DevCycle route
    assert detail["code"] == "too_expensive" and "evaluation budget" in detail["message"], detail
    assert detail["field"] == "targeting.rules[0].filter.rule", detail
    assert time.monotonic() - t0 < 10


def _evaluated(edge: httpx.Client, key: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = edge.get("/features/evaluated", params={"publishableKey": key, "context.user.id": "u7"})
    took = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return took, body


def test_accepted_bombs_are_evaluated_within_budget(world: World, bombs: dict[str, str]) -> None:
    key = bombs["client"]
    edge = world.edge
    with workers_unharmed(world):
        for i, (name, rule) in enumerate(sorted(ACCEPTED.items())):
            t0 = time.monotonic()
            r = _configure(world, f"bomb-{i}", _logic(rule))
            assert r.status_code == 200, (name, r.text[:500])
            assert time.monotonic() - t0 < 10, f"{name}: compile took too long"
        flags = {f"bomb-{i}": name for i, name in enumerate(sorted(ACCEPTED))}
        wait_until(lambda: set(flags) <= set(_evaluated(edge, key)[1]["features"]), "the bombs on the edge")
        _, body = _evaluated(edge, key)
        results = {flags[k]: v["isEnabled"] for k, v in body["features"].items() if k in flags}
        # Over budget means "does not match", whatever the rule would have returned.
        assert set(results) == set(ACCEPTED), results
        # Over budget means "does not match". (Not asserted for every bomb: inside a snapshot the
        # evaluator shares literal arrays, so some, like the merge of 9000 arrays, stay cheap.)
        assert results["map of map over 9000x9000, gated on user.id"] is False
        assert results["some of some, gated on user.id"] is False
        assert results["10k-node or"] is True and results["deep but allowed"] is True
        # ... and without a user.id the gated bombs never run.
        r = edge.get("/features/evaluated", params={"publishableKey": key})
        assert r.status_code == 200 and r.elapsed.total_seconds() < 0.5

        # The bombed environment answers in well under a second; another environment on the same
        # workers keeps its usual speed, also while the bombed one is being hammered.
        bombed = [_evaluated(edge, key)[0] for _ in range(10)]
        stop = threading.Event()
        hammered: list[int] = []

        def hammer() -> None:
            # A fresh connection per request: the kernel spreads them over both workers.
            while not stop.is_set():
                r = httpx.get(f"{base}/features/evaluated", params={"publishableKey": key}, timeout=20)
                hammered.append(r.status_code)

        base = f"http://127.0.0.1:{world.edge_port}"
        threads = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(hammered) >= 4, "the hammering to start")
            other: list[float] = []
            started = time.monotonic()
            while time.monotonic() - started < 1.5:
                with httpx.Client(base_url=base, timeout=20) as fresh:
                    other.append(_evaluated(fresh, world.keys["client"])[0])
            during = len(hammered)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        ms = {name: (statistics.median(v) * 1000, max(v) * 1000) for name, v in (("bombed", bombed), ("other", other))}
        print(
            f"bombed env: median {ms['bombed'][0]:.1f} ms, max {ms['bombed'][1]:.1f} ms; other env while the "
            f"bombed one is hammered ({len(other)} requests): "
            f"median {ms['other'][0]:.1f} ms, max {ms['other'][1]:.1f} ms"
        )
        assert set(hammered) == {200} and during >= 8, (during, set(hammered))
        assert statistics.median(bombed) < 0.5 and max(bombed) < 1.0, bombed
        assert statistics.median(other) < 0.5 and max(other) < 1.0, other
