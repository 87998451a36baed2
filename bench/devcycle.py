"""``python -m bench.devcycle``: the DevCycle routes against ``/features/evaluated``, in one run.

One stack (control plane + edge pinned to core 0, wrk on core 1) holds a W2-sized DevCycle
project: 350 features of ``bench.devcycle_data`` (every target kind, 4 variables each), loaded
through the DevCycle management API. wrk then drives, each with a unique user per request built
in Lua (id, email, country, appVersion, plan, seats, beta, org):

* ``evaluated``: ``GET /features/evaluated`` (the Reflag route over the same features: the reference);
* ``bucketing``: ``POST /v1/variables`` (DevCycle's cloud bucketing API, server key);
* ``sdk-config``: ``GET /v1/sdkConfig`` (client SDKs' bucketed config, client key);
* ``ofrep``: ``POST /ofrep/v1/evaluate/flags`` (OFREP bulk for a DevCycle project).

The report gives requests/s, p99 and each route's ratio to ``evaluated`` measured in the same
run (DESIGN.md section 6 sets its targets as such ratios). Any non-2xx answer fails the run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench import wrk
from bench.devcycle_data import DATASET
from bench.scale import NO_SHEDDING
from bench.stack import LOAD_CPU, Stack, running
from bench.wrk import LUA_THREADS, WrkResult, lua_string

# Per-request unique users (the same fields on every route), as bench.datasets builds contexts.
_PROLOGUE = (
    r"""
local plans = {"free", "starter", "pro", "enterprise"}
local countries = {"DE", "US", "FR", "GB", "JP", "BR"}
local domains = {"acme.com", "example.org", "initech.io"}
local counter = 0
local path = %PATH%
local key = %KEY%

"""
    + LUA_THREADS
    + r"""
local function user()
  counter = counter + 1
  local i = base + counter
  local r = math.random(0, 1000000)
  return {
    id = string.format("user-%d", i),
    email = string.format("person%d@%s", i, domains[r % 3 + 1]),
    country = countries[r % 6 + 1],
    version = string.format("%d.%d.%d", 1 + r % 3, r % 5, r % 10),
    plan = plans[math.floor(r / 7) % 4 + 1],
    seats = r % 150,
    beta = (i % 2 == 0) and "true" or "false",
    org = string.format("org-%d", r % 40),
  }
end
"""
)

_REQUESTS = {
    "evaluated": r"""
function request()
  local u = user()
  return wrk.format("GET", string.format(
    "%s?publishableKey=%s&context.user.id=%s&context.user.email=%s&context.user.country=%s" ..
    "&context.user.appVersion=%s&context.user.customData.plan=%s&context.user.customData.seats=%d" ..
    "&context.user.customData.beta=%s&context.user.customData.org=%s",
    path, key, u.id, u.email:gsub("@", "%%40"), u.country, u.version, u.plan, u.seats, u.beta, u.org))
end
""",
    "sdk-config": r"""
function request()
  local u = user()
  local custom = string.format('{"plan":"%s","seats":%d,"beta":%s,"org":"%s"}', u.plan, u.seats, u.beta, u.org)
  custom = custom:gsub('[{}":,]', function(c) return string.format("%%%02X", string.byte(c)) end)
  return wrk.format("GET", string.format(
    "%s?sdkKey=%s&user_id=%s&email=%s&country=%s&appVersion=%s&customData=%s&isAnonymous=false",
    path, key, u.id, u.email:gsub("@", "%%40"), u.country, u.version, custom))
end
""",
    "bucketing": r"""
function request()
  local u = user()
  local body = string.format(
    '{"user_id":"%s","email":"%s","country":"%s","appVersion":"%s",' ..
    '"customData":{"plan":"%s","seats":%d,"beta":%s,"org":"%s"}}',
    u.id, u.email, u.country, u.version, u.plan, u.seats, u.beta, u.org)
  return wrk.format("POST", path, {["Authorization"] = key, ["Content-Type"] = "application/json"}, body)
end
""",
    "ofrep": r"""
function request()
  local u = user()
  local body = string.format(
    '{"context":{"targetingKey":"%s","email":"%s","country":"%s","appVersion":"%s",' ..
    '"plan":"%s","seats":%d,"beta":%s,"org":"%s"}}',
    u.id, u.email, u.country, u.version, u.plan, u.seats, u.beta, u.org)
  return wrk.format("POST", path, {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}, body)
end
""",
}
PATHS = {
    "evaluated": "/features/evaluated",
    "sdk-config": "/v1/sdkConfig",
    "bucketing": "/v1/variables",
    "ofrep": "/ofrep/v1/evaluate/flags",
}
ROUTES = tuple(PATHS)


def script(route: str, stack: Stack) -> str:
    key = stack.server_key if route in ("bucketing", "ofrep") else stack.client_key
    prologue = _PROLOGUE.replace("%PATH%", lua_string(PATHS[route])).replace("%KEY%", lua_string(key))
    return prologue + _REQUESTS[route]


@dataclass(frozen=True)
class Measured:
    route: str
    result: WrkResult


def measure(stack: Stack, connections: int, seconds: float, routes: tuple[str, ...] = ROUTES) -> list[Measured]:
    """Every route on the same stack, each after a 1 s warm-up; RuntimeError on any non-2xx."""
    out = []
    for route in routes:
        lua = script(route, stack)
        wrk.run(stack.edge_url, lua, connections, 1, cpu=LOAD_CPU)
        result = wrk.run(stack.edge_url, lua, connections, seconds, cpu=LOAD_CPU)
        if result.non_2xx_3xx or result.errors:
            raise RuntimeError(f"{route}: {result.non_2xx_3xx} non-2xx answers, {result.errors} errors")
        out.append(Measured(route, result))
    return out


def table(measured: list[Measured]) -> str:
    reference = next(m.result.rps for m in measured if m.route == "evaluated")
    lines = ["| route | req/s | p50 ms | p99 ms | vs /features/evaluated |", "|---|---|---|---|---|"]
    for m in measured:
        r = m.result
        lines.append(f"| {PATHS[m.route]} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.rps / reference:.2f} |")
    return "\n".join(lines)


@contextmanager
def stack() -> Iterator[Stack]:
    # Without load shedding (as bench.scale): on a shared 2-core host a busy neighbour would
    # otherwise turn a stalled loop into 503s that have nothing to do with the routes compared.
    with running(DATASET, edge_env=NO_SHEDDING) as s:
        yield s


def run(connections: int, seconds: float) -> dict[str, Any]:
    """The suite's phase (``python -m bench``): every route, as JSON for the report."""
    with stack() as s:
        measured = measure(s, connections, seconds)
    routes = {m.route: {"path": PATHS[m.route], **m.result.as_dict()} for m in measured}
    return {"features": s.flags, "connections": connections, "seconds": seconds, "routes": routes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.devcycle", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    ns = parser.parse_args(argv)
    with stack() as s:
        measured = measure(s, ns.connections, ns.seconds)
    print(f"DevCycle W2 ({s.flags} features), {ns.connections} connections, {ns.seconds:g} s per route\n")
    print(table(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
