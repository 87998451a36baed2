"""The real ``@reflag/node-sdk`` (npm), evaluating locally from our ``GET /features``, agrees
with our ``/features/evaluated`` for 2,000 random contexts over flags that use every operator,
dates as JavaScript writes them, and config variants without a filter (issue 13 acceptance);
flags it cannot evaluate are left out of ``GET /features`` and listed with the reason."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.processes import bootstrap_project, free_port, process
from tests.e2e.sdk_support import npm_fixture

SDK_DIR = Path(__file__).parent / "reflag_sdk"
CONTEXTS = 2000
FLAGS = 48
# Every operator of Reflag's `context` filter (`@reflag/flag-evaluation` 1.0.1).
OPERATORS = (
    "IS", "IS_NOT", "ANY_OF", "NOT_ANY_OF", "CONTAINS", "NOT_CONTAINS", "GT", "LT",
    "AFTER", "BEFORE", "DATE_AFTER", "DATE_BEFORE", "SET", "NOT_SET", "IS_TRUE", "IS_FALSE",
)  # fmt: skip
# Dates as JavaScript writes and reads them, most of them not ISO 8601; and things that are not
# dates at all (`new Date("c-1")` is 2001-01-01, `new Date("1714521600000")` is invalid).
DATES = (
    "2024-03-01", "2024-06-30T12:00:00Z", "2024-05-01T10:00:00+02:00", "2024-02-30", "2023-02-29",
    "Wed, 01 May 2024 10:00:00 GMT", "Wed May 01 2024 12:00:00 GMT+0200 (Central European Summer Time)",
    "May 1, 2024", "1 May 2024 10:00 PM", "Sep 30 2023 11:59 pm EST", "2024/05/01", "2024/5/1 08:00",
    "5/1/24", "12/31/1999", "Jan 1", "2024", "12", "0", "1714521600000", "c-1", "pro", "", "2025-13-01",
)  # fmt: skip
FIELDS = ("user.id", "user.email", "user.plan", "company.id", "company.seats", "company.createdAt", "other.beta")


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kind = rng.choice(["context"] * 6 + ["rollout"] * 2 + ["constant"] + (["group", "negation"] if depth < 3 else []))
    if kind == "group":
        return {
            "type": "group",
            "operator": rng.choice(["and", "or"]),
            "filters": [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))],
        }
    if kind == "negation":
        return {"type": "negation", "filter": random_filter(rng, depth + 1)}
    if kind == "constant":
        return {"type": "constant", "value": rng.random() < 0.5}
    if kind == "rollout":
        return {
            "type": "rolloutPercentage",
            "partialRolloutAttribute": rng.choice(["user.id", "company.id"]),
            "partialRolloutThreshold": rng.randint(0, 100_000),
        }
    return context_filter(rng, rng.choice(OPERATORS))


def context_filter(rng: random.Random, operator: str) -> dict[str, Any]:
    field = rng.choice(FIELDS)
    values: list[str]
    if operator in ("IS", "IS_NOT"):
        values = [rng.choice(["pro", "free", "u-3", "c-1", "true", "", "12"])]
    elif operator in ("ANY_OF", "NOT_ANY_OF"):
        # Eight or more values take the evaluator's hash-set path.
        values = rng.sample(
            ["pro", "enterprise", "c-2", "c-5", "u-1", "u-7", "free", "true", "3", "x"], rng.randint(1, 10)
        )
    elif operator in ("CONTAINS", "NOT_CONTAINS"):
        values = [rng.choice(["@acme", "ACME", "u-", "2024", "may"])]
    elif operator in ("GT", "LT"):
        values = [rng.choice([str(rng.randint(0, 100)), "0x1A", "", "abc", "1e2"])]
    elif operator in ("AFTER", "BEFORE"):
        # Days ago; boundaries stay far from the dates of DATES.
        values = [rng.choice(["30", "365", "1000", "4000", "1.5", "abc"])]
    elif operator in ("DATE_AFTER", "DATE_BEFORE"):
        values = [rng.choice(DATES)]
        field = rng.choice(["company.createdAt"] * 3 + list(FIELDS))
    else:
        values = []
    return {"type": "context", "field": field, "operator": operator, "values": values}


def random_context(rng: random.Random, i: int) -> dict[str, Any]:
    user: dict[str, Any] = {"id": f"u-{i}"}
    if rng.random() < 0.8:
        user["email"] = f"user{i}@{rng.choice(['acme.com', 'example.org', 'ACME.io', 'may2024.net'])}"
    if rng.random() < 0.7:
        user["plan"] = rng.choice(["pro", "free", "enterprise", "true", ""])
    company: dict[str, Any] = {"id": f"c-{rng.randint(0, 9)}"}
    if rng.random() < 0.7:
        company["seats"] = rng.choice([rng.randint(0, 150), f"{rng.randint(0, 150)}", "", " 42 ", "0x1A", "n/a"])
    if rng.random() < 0.8:
        company["createdAt"] = rng.choice(DATES)
    context: dict[str, Any] = {"user": user, "company": company}
    if rng.random() < 0.5:
        context["other"] = {"beta": rng.choice([True, False, "true", "yes"])}
    return context


def flatten(context: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for scope, values in context.items():
        for key, value in values.items():
            out[f"context.{scope}.{key}"] = "true" if value is True else "false" if value is False else str(value)
    return out


def flag_configurations(rng: random.Random) -> dict[str, dict[str, Any]]:
    """Random flags that use every operator, a config variant without ``filter`` (issue 13, item
    3), and flags whose DevCycle ``user`` filter or ``jsonLogic`` rule Reflag SDKs cannot evaluate."""
    flags: dict[str, dict[str, Any]] = {}
    for i, operator in enumerate(OPERATORS):
        # One flag per operator, so that none is left to chance.
        flags[f"op-{operator.lower()}"] = {
            "status": "active",
            "targeting": {"rules": [{"filter": context_filter(rng, operator)} for _ in range(1 + i % 3)]},
        }
    for i in range(FLAGS - len(OPERATORS)):
        body: dict[str, Any] = {
            "status": "active",
            "targeting": {"rules": [{"filter": random_filter(rng)} for _ in range(rng.randint(0, 3))]},
        }
        if i % 3 == 0:
            variants: list[dict[str, Any]] = [
                {"key": "a", "filter": random_filter(rng), "payload": {"n": i}},
                {"key": "b", "filter": {"type": "constant", "value": True}, "payload": [1, "two"]},
            ]
            if i % 2 == 0:
                # No filter: everyone. Reflag SDKs throw on it unless the edge spells it out.
                variants.insert(1, {"key": "catch-all", "payload": "all"})
            body["config"] = {"variants": variants}
        flags[f"flag-{i}"] = body
    user = {"type": "user", "subType": "email", "comparator": "contain", "values": ["@acme"]}
    flags["remote-devcycle"] = {"status": "active", "targeting": {"rules": [{"filter": user}]}}
    logic = {"type": "jsonLogic", "rule": {"in": ["acme", {"var": "user.email"}]}}
    flags["remote-jsonlogic"] = {"status": "active", "targeting": {"rules": [{"filter": logic}]}}
    return flags


REMOTE_ONLY = {"remote-devcycle", "remote-jsonlogic"}


@pytest.fixture(scope="module")
def sdk_ready() -> Path:
    return npm_fixture(SDK_DIR, "@reflag/node-sdk")


@pytest.fixture(scope="module")
def edge_with_flags(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    data = tmp_path_factory.mktemp("sdk")
    cp_port, edge_port = free_port(), free_port()
    rng = random.Random(4)
    with process(
        ["control_plane", "serve", "--data-dir", str(data), "--port", str(cp_port)],
        f"http://127.0.0.1:{cp_port}/health",
        data / "cp.log",
    ):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp_port}", timeout=30)
        auth, keys = bootstrap_project(admin)
        for key, body in flag_configurations(rng).items():
            r = admin.post("/v1/projects/shop/features", json={"key": key, "name": key}, headers=auth)
            assert r.status_code == 201, r.text
            r = admin.patch(
                f"/v1/projects/shop/features/{key}/configurations",
                params={"environment": "prod"},
                json=body,
                headers=auth,
            )
            assert r.status_code == 200, r.text
        with process(
            ["server", "serve", "--data-dir", str(data), "--port", str(edge_port), "--workers", "2"],
            f"http://127.0.0.1:{edge_port}/ready",
            data / "edge.log",
        ):
            yield (
                f"http://127.0.0.1:{edge_port}",
                keys["server"],
                keys["client"],
            )


def test_get_features_leaves_out_what_sdks_cannot_evaluate(edge_with_flags: tuple[str, str, str]) -> None:
    base, secret, _ = edge_with_flags
    body = httpx.get(f"{base}/features", headers={"Authorization": f"Bearer {secret}"}, timeout=30).json()
    served = {f["key"] for f in body["features"]}
    assert served.isdisjoint(REMOTE_ONLY)
    assert {r["key"] for r in body["remoteEvaluationOnly"]} == REMOTE_ONLY
    assert all("Reflag SDKs evaluate as false" in r["reason"] for r in body["remoteEvaluationOnly"])
    variants = [v for f in body["features"] for v in (f.get("config") or {}).get("variants", [])]
    assert all(isinstance(v.get("filter"), dict) for v in variants)
    assert any(v["key"] == "catch-all" and v["filter"] == {"type": "constant", "value": True} for v in variants)


def test_node_sdk_agrees_with_the_edge(sdk_ready: Path, edge_with_flags: tuple[str, str, str], tmp_path: Path) -> None:
    base, secret, publishable = edge_with_flags
    rng = random.Random(7)
    contexts = [random_context(rng, i) for i in range(CONTEXTS)]
    (tmp_path / "contexts.json").write_text(json.dumps(contexts))
    run = subprocess.run(
        ["node", "compare.mjs", base, secret, str(tmp_path / "contexts.json")],
        cwd=sdk_ready,
        capture_output=True,
        timeout=300,
        text=True,
        # JavaScript reads dates without a zone as local time; the edge runs on UTC.
        env={**os.environ, "TZ": "UTC"},
    )
    assert run.returncode == 0, run.stderr
    sdk_results = json.loads(run.stdout)
    assert len(sdk_results) == CONTEXTS
    mismatches = []
    compared = 0
    with httpx.Client(base_url=base, timeout=30) as edge:
        for context, expected in zip(contexts, sdk_results, strict=True):
            r = edge.get("/features/evaluated", params={"publishableKey": publishable, **flatten(context)})
            assert r.status_code == 200
            ours = {
                key: {
                    "isEnabled": f["isEnabled"],
                    "config": {"key": f["config"]["key"], "payload": f["config"]["payload"]} if "config" in f else None,
                }
                for key, f in r.json()["features"].items()
                if key not in REMOTE_ONLY
            }
            compared += len(ours)
            if ours != expected:
                mismatches.append((context, expected, ours))
    assert len(expected) == FLAGS
    assert compared == CONTEXTS * FLAGS
    if mismatches:
        context, expected, ours = mismatches[0]
        diff = {
            k: (expected.get(k), ours.get(k)) for k in expected.keys() | ours.keys() if expected.get(k) != ours.get(k)
        }
        raise AssertionError(f"{len(mismatches)} of {CONTEXTS} contexts differ; first {context}: (sdk, edge) {diff}")
