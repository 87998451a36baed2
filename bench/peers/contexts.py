"""The contexts sent to every server, and how each server's API spells them.

One context is a nested dict: W1 has ``user.id`` and ``company.plan``; W2 (and the 10,000-flag
set) adds the attributes the W2 rules read (e-mail, country, app version, beta, role, company
id, plan, seats, creation date). The same values go to every server, each in its own wire form:

* ``/features/evaluated``: flattened ``context.*`` query parameters (values as text);
* OFREP (ours, flagd, go-feature-flag): ``{"context": {"targetingKey": <user.id>, …nested}}``
  with JSON types (``seats`` a number, ``beta`` a boolean);
* Unleash: ``userId`` plus ``properties`` named by dotted path, all text (its context has
  string properties only), as query parameters (``properties[company.plan]=pro``) or as JSON.

``company.createdAt`` is a full RFC 3339 timestamp (``2023-05-15T00:00:00.000Z``): the only
date form Unleash parses, which Reflag's date parser also reads.

:func:`sample` draws contexts in Python for the agreement check; :func:`lua_script` builds the
same kind of context per request inside wrk (unique user ids, the other attributes drawn from
the same value sets), deterministic per wrk thread, so every server gets the same sequence.
"""

from __future__ import annotations

import json
import random
from typing import Any, Literal
from urllib.parse import urlencode

from bench.datasets import COUNTRIES, PLANS
from bench.wrk import LUA_THREADS, lua_string

Wire = Literal["reflag-query", "ofrep", "unleash-query", "unleash-json"]
WIRES: tuple[Wire, ...] = ("reflag-query", "ofrep", "unleash-query", "unleash-json")


def w2_context(i: int, r: int) -> dict[str, Any]:
    """The W2 context number ``i`` with draw ``r`` (0..1,000,000); :data:`_LUA_W2` mirrors it."""
    return {
        "user": {
            "id": f"user-{i}",
            "email": f"user{i}@{'acme.com' if i % 3 == 0 else 'example.org'}",
            "country": COUNTRIES[r % 6],
            "appVersion": f"{1 + r % 3}.{r % 10}.{r % 20}",
            "beta": i % 2 == 0,
            "role": "admin",
        },
        "company": {
            "id": f"c-{r % 50}",
            "plan": PLANS[(r // 7) % 4],
            "seats": r % 200,
            "createdAt": f"2023-{1 + r % 12:02}-15T00:00:00.000Z",
        },
    }


def w1_context(i: int) -> dict[str, Any]:
    """The W1 context number ``i`` (``u-7`` is the id W1's first flag targets)."""
    return {"user": {"id": f"u-{i}"}, "company": {"plan": PLANS[i % 4]}}


def sample(dataset: str, n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` contexts for ``dataset`` (``w1`` or a W2-shaped one), the first ids small so that
    W1's ``u-7`` and W2's company ids ``c-1``..``c-9`` occur."""
    rng = random.Random(seed)
    if dataset == "w1":
        return [w1_context(i) for i in range(n)]
    return [w2_context(i, rng.randrange(1_000_001)) for i in range(n)]


def flat(context: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted paths → text values (booleans as ``true``/``false``, as JavaScript prints them)."""
    out: dict[str, str] = {}
    for key, value in context.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, f"{path}."))
        elif isinstance(value, bool):
            out[path] = "true" if value else "false"
        else:
            out[path] = str(value)
    return out


def targeting_key(context: dict[str, Any]) -> str:
    return str(context["user"]["id"])


def ofrep_body(context: dict[str, Any]) -> dict[str, Any]:
    return {"context": {"targetingKey": targeting_key(context), **context}}


def unleash_context(context: dict[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in flat(context).items() if k != "user.id"}
    return {"userId": targeting_key(context), "properties": properties}


def unleash_query(context: dict[str, Any]) -> str:
    ctx = unleash_context(context)
    pairs = [("userId", ctx["userId"])] + [(f"properties[{k}]", v) for k, v in ctx["properties"].items()]
    return urlencode(pairs)


def reflag_query(context: dict[str, Any]) -> str:
    return urlencode([(f"context.{k}", v) for k, v in flat(context).items()])


# --- wrk -------------------------------------------------------------------------------------

# Each wrk thread counts user ids up from its own base and seeds its draws from it, like
# bench.datasets' scripts. ctx() returns the attribute values; the wire functions spell them.
_LUA_PROLOGUE = (
    r"""
local plans = {"free", "starter", "pro", "enterprise"}
local countries = {"DE", "US", "FR", "GB", "JP", "BR"}
local counter = 0
local path = %PATH%
local method = %METHOD%
local headers = %HEADERS%

"""
    + LUA_THREADS
    + r"""
local function esc(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
"""
)

_LUA_W1 = r"""
local function ctx()
  counter = counter + 1
  local i = base + counter
  return {id = "u-" .. i, plan = plans[i % 4 + 1]}
end

local wire = {}
wire["reflag-query"] = function(c)
  return "&context.user.id=" .. c.id .. "&context.company.plan=" .. c.plan, nil
end
wire["unleash-query"] = function(c)
  return "?userId=" .. c.id .. "&" .. esc("properties[company.plan]") .. "=" .. c.plan, nil
end
wire["ofrep"] = function(c)
  return "", string.format('{"context":{"targetingKey":"%s","user":{"id":"%s"},"company":{"plan":"%s"}}}',
    c.id, c.id, c.plan)
end
wire["unleash-json"] = function(c)
  return "", string.format('{"userId":"%s","properties":{"company.plan":"%s"}}', c.id, c.plan)
end
"""

_LUA_W2 = r"""
local function ctx()
  counter = counter + 1
  local i = base + counter
  local r = math.random(0, 1000000)
  return {
    id = "user-" .. i,
    email = "user" .. i .. "@" .. ((i % 3 == 0) and "acme.com" or "example.org"),
    country = countries[r % 6 + 1],
    version = string.format("%d.%d.%d", 1 + r % 3, r % 10, r % 20),
    beta = (i % 2 == 0) and "true" or "false",
    company = "c-" .. (r % 50),
    plan = plans[math.floor(r / 7) % 4 + 1],
    seats = tostring(r % 200),
    created = string.format("2023-%02d-15T00:00:00.000Z", 1 + r % 12),
  }
end

local function pairs_of(c, user_id_name, user_prefix, company_prefix)
  return {
    {user_id_name, c.id}, {user_prefix .. "email", c.email}, {user_prefix .. "country", c.country},
    {user_prefix .. "appVersion", c.version}, {user_prefix .. "beta", c.beta},
    {user_prefix .. "role", "admin"}, {company_prefix .. "id", c.company},
    {company_prefix .. "plan", c.plan}, {company_prefix .. "seats", c.seats},
    {company_prefix .. "createdAt", c.created},
  }
end

local function query(list, first)
  local out = {}
  for n, kv in ipairs(list) do
    out[n] = esc(kv[1]) .. "=" .. esc(kv[2])
  end
  return first .. table.concat(out, "&")
end

local wire = {}
wire["reflag-query"] = function(c)
  return query(pairs_of(c, "context.user.id", "context.user.", "context.company."), "&"), nil
end
wire["unleash-query"] = function(c)
  local list = pairs_of(c, "userId", "properties[user.", "properties[company.")
  for n = 2, #list do
    list[n][1] = list[n][1] .. "]"
  end
  return query(list, "?"), nil
end
wire["ofrep"] = function(c)
  return "", string.format(
    '{"context":{"targetingKey":"%s","user":{"id":"%s","email":"%s","country":"%s","appVersion":"%s",' ..
    '"beta":%s,"role":"admin"},"company":{"id":"%s","plan":"%s","seats":%s,"createdAt":"%s"}}}',
    c.id, c.id, c.email, c.country, c.version, c.beta, c.company, c.plan, c.seats, c.created)
end
wire["unleash-json"] = function(c)
  return "", string.format(
    '{"userId":"%s","properties":{"user.email":"%s","user.country":"%s","user.appVersion":"%s",' ..
    '"user.beta":"%s","user.role":"admin","company.id":"%s","company.plan":"%s","company.seats":"%s",' ..
    '"company.createdAt":"%s"}}',
    c.id, c.email, c.country, c.version, c.beta, c.company, c.plan, c.seats, c.created)
end
"""

_LUA_REQUEST = r"""
local spell = wire[%WIRE%]

function request()
  local suffix, body = spell(ctx())
  return wrk.format(method, path .. suffix, headers, body)
end
"""


def lua_script(dataset: str, wire: Wire, path: str, headers: dict[str, str] | None = None) -> str:
    """A wrk script requesting ``path`` (GET, or POST with a JSON body for the JSON wires) with
    a new ``dataset`` context per request, spelled as ``wire`` (query suffix or body)."""
    method = "POST" if wire in ("ofrep", "unleash-json") else "GET"
    all_headers = dict(headers or {})
    if method == "POST":
        all_headers.setdefault("Content-Type", "application/json")
    lua_headers = "{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in all_headers.items()) + "}"
    prologue = (
        _LUA_PROLOGUE.replace("%PATH%", lua_string(path))
        .replace("%METHOD%", lua_string(method))
        .replace("%HEADERS%", lua_headers)
    )
    body = _LUA_W1 if dataset == "w1" else _LUA_W2
    return prologue + body + _LUA_REQUEST.replace("%WIRE%", json.dumps(wire))
