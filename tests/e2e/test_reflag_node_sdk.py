"""The real ``@reflag/node-sdk`` (npm), evaluating locally from our ``GET /features``, agrees
with our ``/features/evaluated`` for 1,000 random contexts (issue 4 acceptance)."""

from __future__ import annotations

import json
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
FIELDS = ["user.id", "user.email", "user.plan", "company.id", "company.seats", "company.createdAt", "other.beta"]
CONTEXTS = 1000
FLAGS = 24


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kind = rng.choice(["context"] * 5 + ["rollout"] * 2 + (["group", "negation"] if depth < 3 else []))
    if kind == "group":
        return {
            "type": "group",
            "operator": rng.choice(["and", "or"]),
            "filters": [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))],
        }
    if kind == "negation":
        return {"type": "negation", "filter": random_filter(rng, depth + 1)}
    if kind == "rollout":
        return {
            "type": "rolloutPercentage",
            "partialRolloutAttribute": rng.choice(["user.id", "company.id"]),
            "partialRolloutThreshold": rng.randint(0, 100_000),
        }
    field = rng.choice(FIELDS)
    operator, values = rng.choice(
        [
            ("IS", [rng.choice(["pro", "free", "u-3", "c-1", "true"])]),
            ("IS_NOT", ["free"]),
            ("ANY_OF", ["pro", "enterprise", "c-2", "c-5"]),
            ("NOT_ANY_OF", ["free", "u-1"]),
            ("CONTAINS", [rng.choice(["@acme", "ACME", "u-"])]),
            ("NOT_CONTAINS", ["example"]),
            ("GT", [str(rng.randint(0, 100))]),
            ("LT", [str(rng.randint(0, 100))]),
            ("SET", []),
            ("NOT_SET", []),
            ("IS_TRUE", []),
            ("IS_FALSE", []),
            ("DATE_AFTER", ["2024-03-01"]),
            ("DATE_BEFORE", ["2024-06-30T12:00:00Z"]),
        ]
    )
    if operator.startswith("DATE_"):
        # V8's `new Date()` also accepts non-dates ("c-1" is 2001-01-01); DESIGN.md §5 and the
        # vectors README choose strict ISO 8601, so date operators get date-valued fields here.
        field = "company.createdAt"
    return {"type": "context", "field": field, "operator": operator, "values": values}


def random_context(rng: random.Random, i: int) -> dict[str, Any]:
    user: dict[str, Any] = {"id": f"u-{i}"}
    if rng.random() < 0.8:
        user["email"] = f"user{i}@{rng.choice(['acme.com', 'example.org', 'ACME.io'])}"
    if rng.random() < 0.7:
        user["plan"] = rng.choice(["pro", "free", "enterprise"])
    company: dict[str, Any] = {"id": f"c-{rng.randint(0, 9)}"}
    if rng.random() < 0.7:
        company["seats"] = rng.choice([rng.randint(0, 150), f"{rng.randint(0, 150)}", ""])
    if rng.random() < 0.6:
        company["createdAt"] = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    context: dict[str, Any] = {"user": user, "company": company}
    if rng.random() < 0.5:
        context["other"] = {"beta": rng.choice([True, False])}
    return context


def flatten(context: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for scope, values in context.items():
        for key, value in values.items():
            out[f"context.{scope}.{key}"] = "true" if value is True else "false" if value is False else str(value)
    return out


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
        for i in range(FLAGS):
            key = f"flag-{i}"
            assert (
                admin.post("/v1/projects/shop/features", json={"key": key, "name": key}, headers=auth).status_code
                == 201
            )
            body: dict[str, Any] = {
                "status": "active",
                "targeting": {"rules": [{"filter": random_filter(rng)} for _ in range(rng.randint(0, 3))]},
            }
            if i % 3 == 0:
                body["config"] = {
                    "variants": [
                        {"key": "a", "filter": random_filter(rng), "payload": {"n": i}},
                        {"key": "b", "filter": {"type": "constant", "value": True}, "payload": [1, "two"]},
                    ]
                }
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
    )
    assert run.returncode == 0, run.stderr
    sdk_results = json.loads(run.stdout)
    assert len(sdk_results) == CONTEXTS
    mismatches = []
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
            }
            if ours != expected:
                mismatches.append((context, expected, ours))
    assert len(expected) == FLAGS
    if mismatches:
        context, expected, ours = mismatches[0]
        diff = {
            k: (expected.get(k), ours.get(k)) for k in expected.keys() | ours.keys() if expected.get(k) != ours.get(k)
        }
        raise AssertionError(f"{len(mismatches)} contexts differ; first {context}: (sdk, edge) {diff}")
