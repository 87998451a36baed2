"""Benchmark datasets (DESIGN.md §6), loaded through the real control-plane API.

W1 is 5 flags over 2 context attributes; W2 is 350 flags mixing context operators, semver,
rollouts, nested groups, negations, DevCycle user filters and multi-variant configs; the scale
sets are ``n`` flags of the W2 mix. The generator is a port of the criterion workloads
(``evaluator/benches/support/workloads.rs``, same SplitMix64 stream), so the edge and the
evaluator micro-benchmarks measure the same rules.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from bench.wrk import LUA_THREADS, lua_string

PLANS = ("free", "starter", "pro", "enterprise")
COUNTRIES = ("DE", "US", "FR", "GB", "JP", "BR")
_MASK = (1 << 64) - 1
# The bulk route takes up to 1,000 features per request; each commit recompiles the project.
BULK = 1000


class Rng:
    """SplitMix64, bit-identical to the Rust workloads' generator."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next_u64() % n


def _context_filter(rng: Rng) -> dict[str, Any]:
    match rng.below(8):
        case 0:
            return {"type": "context", "field": "company.plan", "operator": "ANY_OF", "values": ["pro", "enterprise"]}
        case 1:
            return {"type": "context", "field": "user.email", "operator": "CONTAINS", "values": ["@acme"]}
        case 2:
            return {"type": "context", "field": "company.seats", "operator": "GT", "values": [str(rng.below(100))]}
        case 3:
            country = COUNTRIES[rng.below(6)]
            return {"type": "context", "field": "user.country", "operator": "IS", "values": [country]}
        case 4:
            return {"type": "context", "field": "company.createdAt", "operator": "DATE_AFTER", "values": ["2023-06-01"]}
        case 5:
            return {"type": "context", "field": "user.beta", "operator": "IS_TRUE", "values": []}
        case 6:
            ids = [f"c-{i}" for i in range(1, 10)]
            return {"type": "context", "field": "company.id", "operator": "NOT_ANY_OF", "values": ids}
        case _:
            return {"type": "context", "field": "user.role", "operator": "SET", "values": []}


def _rollout(attribute: str, threshold: int) -> dict[str, Any]:
    return {"type": "rolloutPercentage", "partialRolloutAttribute": attribute, "partialRolloutThreshold": threshold}


def _w2_filter(i: int, rng: Rng) -> dict[str, Any]:
    match i % 7:
        case 0:
            return _context_filter(rng)
        case 1:
            return _rollout("user.id", rng.below(100_001))
        case 2:
            first = _context_filter(rng)
            return {"type": "group", "operator": "and", "filters": [first, _rollout("company.id", rng.below(100_001))]}
        case 3:
            outer = _context_filter(rng)
            inner = [_context_filter(rng), {"type": "negation", "filter": _context_filter(rng)}]
            return {
                "type": "group",
                "operator": "or",
                "filters": [outer, {"type": "group", "operator": "and", "filters": inner}],
            }
        case 4:
            version = f"{1 + rng.below(3)}.{rng.below(10)}.0"
            return {"type": "jsonLogic", "rule": {"sem_ver": [{"var": "user.appVersion"}, ">=", version]}}
        case 5:
            return {"type": "user", "subType": "country", "comparator": "=", "values": ["DE", "FR"]}
        case _:
            return {"type": "constant", "value": True}


def w2_flag(i: int, rng: Rng) -> dict[str, Any]:
    """One flag as the evaluator's snapshot shape: ``key``, ``targeting.rules``, maybe ``config``."""
    flag: dict[str, Any] = {"key": f"flag-{i:04}", "targeting": {"rules": [{"filter": _w2_filter(i, rng)}]}}
    if i % 5 == 0:
        flag["config"] = {
            "variants": [
                {"key": "a", "filter": _context_filter(rng), "payload": {"color": "blue", "size": 3}},
                {"key": "b", "filter": _rollout("user.id", 50_000), "payload": {"color": "red"}},
                {"key": "c", "filter": {"type": "constant", "value": True}, "payload": None},
            ]
        }
    return flag


def w1_flags() -> list[dict[str, Any]]:
    def context(field: str, operator: str, values: list[str]) -> dict[str, Any]:
        return {"type": "context", "field": field, "operator": operator, "values": values}

    filters = [
        context("user.id", "IS", ["u-7"]),
        context("company.plan", "ANY_OF", ["pro", "enterprise"]),
        _rollout("user.id", 30_000),
        {"type": "negation", "filter": context("company.plan", "IS", ["free"])},
        {"type": "constant", "value": True},
    ]
    return [{"key": f"w1-{c}", "targeting": {"rules": [{"filter": f}]}} for c, f in zip("abcde", filters, strict=True)]


def scale_flags(n: int) -> list[dict[str, Any]]:
    rng = Rng(n)
    return [w2_flag(i, rng) for i in range(n)]


def w2_flags() -> list[dict[str, Any]]:
    rng = Rng(2)
    return [w2_flag(i, rng) for i in range(350)]


def flags_for(name: str) -> list[dict[str, Any]]:
    """``w1``, ``w2`` or ``scale-<n>``."""
    if name == "w1":
        return w1_flags()
    if name == "w2":
        return w2_flags()
    if name.startswith("scale-"):
        return scale_flags(int(name.removeprefix("scale-")))
    raise ValueError(f"unknown dataset {name!r}")


def _chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class Loaded:
    flags: int
    seconds: float
    requests: int


def _configuration(flag: dict[str, Any]) -> dict[str, Any]:
    out = {"status": "active", "targeting": flag["targeting"]}
    if "config" in flag:
        out["config"] = flag["config"]
    return out


def load(admin: httpx.Client, auth: dict[str, str], project: str, env: str, flags: list[dict[str, Any]]) -> Loaded:
    """Create every flag with its ``env`` configuration through ``POST …/features/multiple``."""
    started = time.perf_counter()
    requests = 0
    for chunk in _chunks(flags, BULK):
        body = [{"key": f["key"], "name": f["key"], "configurations": {env: _configuration(f)}} for f in chunk]
        r = admin.post(f"/v1/projects/{project}/features/multiple", json=body, headers=auth, timeout=600)
        requests += 1
        if r.status_code != 201:
            raise RuntimeError(f"loading {len(flags)} flags failed at request {requests}: {r.status_code} {r.text}")
    return Loaded(flags=len(flags), seconds=round(time.perf_counter() - started, 2), requests=requests)


# Per-request unique contexts, built inside wrk: user ids count up from a per-thread base (set
# by setup() as a global of each thread's Lua state), the other attributes vary like the
# criterion workloads' contexts (plans, countries, versions, dates).
_LUA_PROLOGUE = (
    r"""
local plans = {"free", "starter", "pro", "enterprise"}
local countries = {"DE", "US", "FR", "GB", "JP", "BR"}
local counter = 0
local prefix = %PREFIX%

"""
    + LUA_THREADS
    + r""""""
)

_W2_REQUEST = r"""
function request()
  counter = counter + 1
  local i = base + counter
  local r = math.random(0, 1000000)
  local path = string.format(
    "%s&context.user.id=user-%d&context.user.email=user%d%%40%s&context.user.country=%s" ..
    "&context.user.appVersion=%d.%d.%d&context.user.beta=%s&context.user.role=admin" ..
    "&context.company.id=c-%d&context.company.plan=%s&context.company.seats=%d" ..
    "&context.company.createdAt=2023-%02d-15",
    prefix, i, i, (i % 3 == 0) and "acme.com" or "example.org", countries[r % 6 + 1],
    1 + r % 3, r % 10, r % 20, (i % 2 == 0) and "true" or "false",
    r % 50, plans[math.floor(r / 7) % 4 + 1], r % 200, 1 + r % 12)
  return wrk.format("GET", path)
end
"""

_W1_REQUEST = r"""
function request()
  counter = counter + 1
  local i = base + counter
  return wrk.format("GET", string.format("%s&context.user.id=u-%d&context.company.plan=%s",
    prefix, i, plans[i % 4 + 1]))
end
"""


def evaluated_script(sdk_key: str, dataset: str) -> str:
    """A wrk script sending ``/features/evaluated`` with a unique context per request.

    W1 sends its 2 attributes; every other dataset sends the 10-attribute W2 context.
    """
    prefix = lua_string(f"/features/evaluated?publishableKey={sdk_key}")
    request = _W1_REQUEST if dataset == "w1" else _W2_REQUEST
    return _LUA_PROLOGUE.replace("%PREFIX%", prefix) + request
