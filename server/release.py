"""Airborne's public release route: ``GET /release/{organisation}/{application}``.

The control plane publishes one value per application in the LMDB ``releases`` table
(``control_plane/releases_snapshot.py`` builds it). For each request the edge:

1. reads the dimension context from the ``x-dimensions`` header (``x-dimension`` is accepted too,
   as Airborne clients send it): a JSON object of scalars, or ``k=v;k2=v2`` with URL-encoded
   values (``+`` stays a plus, SemVer build metadata uses it). Values compare as strings (numbers
   and booleans in their JSON spelling); a ``null`` is an absent dimension;
2. computes every cohort dimension from its JSON Logic rule (a value the client sent for a cohort
   dimension is replaced);
3. walks the application's release chain (below) and serves the first step that takes the
   client: a live release takes every client it matches; an experiment takes a client it matches
   only when the client's bucket is inside its traffic.

The chain (the README's "Which release a device gets" states the same rule): every live release
and every experiment with traffic above 0%, most specific first (``weight``: the sum of
``2**position`` of the release's dimensions), and at equal specificity the experiment ahead of the
live release it would replace, then the newest first. A release context matches when each of its
dimensions equals the context's. So a client only enters an experiment whose release would be its
live release if the experiment were concluded now; a more specific live release stops the walk
before any broader experiment; a draft (CREATED, 0%) or an experiment ramped down to 0% is not in
the chain and shields nobody; a client outside one experiment's traffic goes on to whatever it
would get without that experiment.

The bucket is ``(murmur3_32("{experiment_id}.{identifier}") * 10000) >> 32`` out of 10000 and a
client is in when ``bucket < traffic * 100``: raising the traffic keeps everyone who was already
in, lowering it sends back exactly the devices above the new line, deterministically. The
identifier is the first of: the ``toss`` query parameter (what Airborne's own server reads; the
Airborne SDKs fetch the release config URL the app gives them, so an app puts ``?toss=<device
id>`` there), else the first of the dimensions :data:`IDENTIFIER_DIMENSIONS` in ``x-dimensions``.
Without one, a client gets what it would get without the experiment until it reaches 100%.

Each application's value is compiled once per snapshot value (not per request): rules are checked,
group cohorts become a member → cohort dictionary, checkpoint rules keep a memo per input value
and every servable body is serialized with its ETag in advance. A value that does not compile
keeps the application's last good compiled release (reported in the log).

Response (the seed's shape, nothing else): ``{"version": <config version name>, "config":
{"version": <config number>, "boot_timeout", "package_timeout", "properties"}, "package":
{"version", "index": <index file URL>, "properties", "important": [{"url", "file_path"}], "lazy":
[...]}, "resources": [...]}``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response

import evaluator
from server.auth import unknown
from server.errors import EdgeError, request_id
from server.etags import etag_of, not_modified
from server.state import EdgeState, View

log = logging.getLogger("server.release")

Endpoint = Callable[[Request], Awaitable[Response]]
SNAPSHOT_FORMAT = 1
OTHERWISE = "otherwise"
HEADERS = ("x-dimensions", "x-dimension")
MAX_HEADER_BYTES = 8192
MAX_DIMENSIONS = 64
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 256
MAX_TOSS_CHARS = 256
# Dimensions that identify a device for bucketing when the request has no ``toss`` parameter,
# in the order they are looked for (names a mobile client commonly sends).
IDENTIFIER_DIMENSIONS = ("toss", "device_id", "deviceId", "user_id", "userId")
MEMO_ENTRIES = 10_000
BUCKETS = 10_000
CACHE_CONTROL = "no-cache"
VARY = "x-dimensions, x-dimension"

Context = dict[str, str]


class EdgeLike(Protocol):
    state: EdgeState

    async def view_for(self, request: Request) -> View: ...


class ReleaseDataError(ValueError):
    """A published release value the edge cannot serve."""


# ---------------------------------------------------------------------------------------------
# Dimension context.


def scalar(value: Any) -> str | None:
    """A dimension value as it compares: strings as is, JSON spelling for numbers and booleans."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    raise ValueError("dimension values must be strings, numbers or booleans")


def _bad(message: str, field: str = "x-dimensions") -> EdgeError:
    return EdgeError(400, message, field=field)


def _checked(context: Context, key: str, value: str | None) -> None:
    if not key or len(key) > MAX_KEY_CHARS:
        raise _bad(f"dimension names must be 1 to {MAX_KEY_CHARS} characters")
    if value is None:
        context.pop(key, None)
        return
    if len(value) > MAX_VALUE_CHARS:
        raise _bad(f"dimension values must be at most {MAX_VALUE_CHARS} characters", f"x-dimensions.{key}")
    context[key] = value
    if len(context) > MAX_DIMENSIONS:
        raise _bad(f"at most {MAX_DIMENSIONS} dimensions")


def parse_dimensions(raw: str | None) -> Context:
    """The context of an ``x-dimensions`` header value (JSON object or ``k=v;k2=v2``); 400 if malformed."""
    if raw is None:
        return {}
    try:
        text = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise _bad("x-dimensions is not UTF-8") from None
    if len(text.encode()) > MAX_HEADER_BYTES:
        raise _bad(f"x-dimensions is longer than {MAX_HEADER_BYTES} bytes")
    text = text.strip()
    context: Context = {}
    if not text:
        return context
    if text.startswith("{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise _bad("x-dimensions is not valid JSON") from None
        if not isinstance(doc, dict):
            raise _bad("x-dimensions must be a JSON object")
        for key, value in doc.items():
            try:
                normalized = scalar(value)
            except ValueError as e:
                raise _bad(str(e), f"x-dimensions.{key}"[: 13 + MAX_KEY_CHARS]) from None
            _checked(context, key, normalized)
        return context
    for part in text.split(";"):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        if not eq:
            raise _bad("x-dimensions must be a JSON object or k=v pairs separated by ';'")
        try:
            key = unquote(name.strip(), errors="strict")
            decoded = unquote(value.strip(), errors="strict")
        except UnicodeError:
            raise _bad("x-dimensions has a URL-encoded value that is not UTF-8") from None
        _checked(context, key, decoded)
    return context


def request_context(request: Request) -> Context:
    for header in HEADERS:
        raw = request.headers.get(header)
        if raw is not None:
            return parse_dimensions(raw)
    return {}


def bucket(experiment_id: str, identifier: str) -> int:
    """The client's bucket in ``[0, 10000)`` for one experiment; in when ``bucket < traffic * 100``."""
    return (evaluator.murmur3_32(f"{experiment_id}.{identifier}") * BUCKETS) >> 32


def in_experiment(experiment_id: str, traffic: int, identifier: str | None) -> bool:
    if traffic >= 100:
        return True
    if traffic <= 0 or identifier is None:
        return False
    return bucket(experiment_id, identifier) < traffic * (BUCKETS // 100)


# ---------------------------------------------------------------------------------------------
# Compiled release data.


@dataclass(frozen=True)
class Served:
    body: bytes
    etag: str


def _vars(rule: Any, out: set[Any]) -> None:
    """Every variable name ``rule`` reads (a computed name is recorded as ``None``)."""
    if isinstance(rule, list):
        for item in rule:
            _vars(item, out)
    elif isinstance(rule, dict):
        for op, args in rule.items():
            if op == "var":
                name = args[0] if isinstance(args, list) and args else args
                out.add(name if isinstance(name, str) else None)
                if isinstance(args, list):
                    _vars(args[1:], out)
            else:
                _vars(args, out)


def _chain(cohorts: list[tuple[str, Any]]) -> Any:
    """The if-chain the control plane builds: first true cohort's name, else ``otherwise``."""
    if not cohorts:
        return OTHERWISE
    args: list[Any] = []
    for name, rule in cohorts:
        args += [rule, name]
    args.append(OTHERWISE)
    return {"if": args}


def _group_members(rule: Any, depends_on: str) -> list[str] | None:
    """The members of a plain group rule ``{"in": [{"var": depends_on}, [strings]]}``."""
    if not isinstance(rule, dict) or len(rule) != 1 or "in" not in rule:
        return None
    args = rule["in"]
    if not (isinstance(args, list) and len(args) == 2 and args[0] == {"var": depends_on}):
        return None
    members = args[1]
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        return None
    return members


@dataclass
class CohortDimension:
    """One cohort dimension, ready to evaluate: group members by dictionary, the rest by JSON Logic."""

    name: str
    depends_on: str
    members: dict[str, str]
    residual: Any
    memoize: bool
    names: frozenset[str]
    memo: dict[str | None, str] = field(default_factory=dict)

    def value(self, context: Context) -> str:
        v = context.get(self.depends_on)
        if v is not None:
            hit = self.members.get(v)
            if hit is not None:
                return hit
        if self.residual == OTHERWISE:
            return OTHERWISE
        if self.memoize:
            cached = self.memo.get(v)
            if cached is not None:
                return cached
            data: Mapping[str, str] = {self.depends_on: v} if v is not None else {}
        else:
            data = context
        try:
            out = evaluator.jsonlogic_apply(self.residual, data)
        except evaluator.EvaluatorError as e:
            log.warning("cohort dimension %s: rule failed for this context (%s); using otherwise", self.name, e)
            return OTHERWISE
        result = out if isinstance(out, str) and out in self.names else OTHERWISE
        if self.memoize and len(self.memo) < MEMO_ENTRIES:
            self.memo[v] = result
        return result


def compile_cohort(entry: Mapping[str, Any]) -> CohortDimension:
    name = str(entry["name"])
    depends_on = entry.get("depends_on")
    rule = entry.get("rule", OTHERWISE)
    cohorts = entry.get("cohorts") or []
    if not isinstance(depends_on, str) or not isinstance(cohorts, list):
        raise ReleaseDataError(f"cohort dimension {name}: depends_on and cohorts are required")
    pairs = [(str(c["name"]), c["rule"]) for c in cohorts]
    members: dict[str, str] = {}
    rest = pairs
    if rule == _chain(pairs):
        # Leading plain groups become one dictionary (the first group listing a member wins).
        for i, (cohort, cohort_rule) in enumerate(pairs):
            listed = _group_members(cohort_rule, depends_on)
            if listed is None:
                rest = pairs[i:]
                break
            for member in listed:
                members.setdefault(member, cohort)
        else:
            rest = []
        residual = _chain(rest)
    else:
        members, residual = {}, rule
    try:
        evaluator.jsonlogic_apply(residual, {})
    except evaluator.RuleError as e:
        raise ReleaseDataError(f"cohort dimension {name}: rule does not compile at {e.path}: {e.reason}") from None
    except evaluator.EvaluatorError:
        pass  # compiles; this particular (empty) context just does not evaluate
    read: set[Any] = set()
    _vars(residual, read)
    return CohortDimension(
        name=name,
        depends_on=depends_on,
        members=members,
        residual=residual,
        memoize=read <= {depends_on},
        names=frozenset(n for n, _ in pairs) | {OTHERWISE},
    )


def _file(entry: Any) -> dict[str, str]:
    return {"url": str(entry["url"]), "file_path": str(entry["file_path"])}


def serve_body(content: Mapping[str, Any]) -> Served:
    """The seed's response body for one release's content, serialized once."""
    config = content["config"]
    package = content["package"]
    index = package["index"]
    doc: dict[str, Any] = {
        "version": str(config.get("version", "")),
        "config": {
            "version": int(config.get("config_number", 0)),
            "boot_timeout": int(config["boot_timeout"]),
            "package_timeout": int(config["package_timeout"]),
            "properties": config.get("properties") or {},
        },
        "package": {
            "version": int(package["version"]),
            "index": str(index["url"]) if isinstance(index, dict) else str(index),
            "properties": package.get("properties") or {},
            "important": [_file(f) for f in package.get("important") or []],
            "lazy": [_file(f) for f in package.get("lazy") or []],
        },
        "resources": [_file(f) for f in content.get("resources") or []],
    }
    # Fields Airborne's own server also serves, present when the release was created with them.
    if "release_config_timeout" in config:
        doc["config"]["release_config_timeout"] = int(config["release_config_timeout"])
    if "name" in package:
        doc["package"] = {"name": str(package["name"]), **doc["package"]}
    body = orjson.dumps(doc)
    return Served(body, etag_of(body))


def _conditions(dimensions: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(dimensions, dict):
        raise ReleaseDataError("release dimensions must be an object")
    out = []
    for key, value in dimensions.items():
        v = scalar(value)
        if v is None:
            raise ReleaseDataError(f"release dimension {key} has no value")
        out.append((str(key), v))
    return tuple(out)


def _matches(conditions: tuple[tuple[str, str], ...], context: Context) -> bool:
    return all(context.get(k) == v for k, v in conditions)


@dataclass(frozen=True)
class Step:
    """One release of the chain: live (``traffic`` None) or an experiment with its traffic."""

    id: str
    conditions: tuple[tuple[str, str], ...]
    traffic: int | None
    served: Served


def identifier_of(sent: Context, toss: str | None) -> str | None:
    """The device's bucketing identifier: ``?toss=``, else the first identifier dimension sent."""
    if toss is not None:
        return toss
    for name in IDENTIFIER_DIMENSIONS:
        value = sent.get(name)
        if value:
            return value
    return None


@dataclass
class CompiledRelease:
    source: Any
    cohorts: list[CohortDimension]
    chain: list[Step]

    def context(self, sent: Context) -> Context:
        context = dict(sent)
        for cohort in self.cohorts:
            context.pop(cohort.name, None)
        for cohort in self.cohorts:
            context[cohort.name] = cohort.value(context)
        return context

    def resolve(self, sent: Context, toss: str | None) -> Served | None:
        """The first step of the chain that takes this client (None: no release for it)."""
        context = self.context(sent)
        identifier = identifier_of(sent, toss)
        for step in self.chain:
            if not _matches(step.conditions, context):
                continue
            if step.traffic is None or in_experiment(step.id, step.traffic, identifier):
                return step.served
        return None


def build_chain(live: list[tuple[int, Step]], experiments: list[tuple[int, Step]]) -> list[Step]:
    """Most specific first; at one weight experiments before live; each list keeps its own (newest
    first) order, as the control plane publishes it. 0% experiments are left out."""
    ranked = [(-w, 0, i, step) for i, (w, step) in enumerate(experiments) if step.traffic]
    ranked += [(-w, 1, i, step) for i, (w, step) in enumerate(live)]
    ranked.sort(key=lambda t: t[:3])
    return [step for *_, step in ranked]


def compile_release(value: Any) -> CompiledRelease:
    """Everything one application's release value needs at request time; ReleaseDataError if unusable."""
    if not isinstance(value, dict) or value.get("format") != SNAPSHOT_FORMAT:
        found = value.get("format") if isinstance(value, dict) else type(value).__name__
        raise ReleaseDataError(f"unsupported release data format {found!r}")
    try:
        cohorts = [compile_cohort(d) for d in value.get("dimensions") or [] if d.get("dimension_type") == "cohort"]
        live = [
            (int(e["weight"]), Step(str(e["id"]), _conditions(e.get("dimensions", {})), None, serve_body(e)))
            for e in value.get("live", [])
        ]
        experiments = [
            (
                int(e["weight"]),
                Step(
                    str(e["id"]),
                    _conditions(e.get("dimensions", {})),
                    int(e.get("traffic_percentage", 0)),
                    serve_body(e["experimental"]),
                ),
            )
            for e in value.get("experiments", [])
        ]
    except ReleaseDataError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ReleaseDataError(f"{type(e).__name__}: {e}") from None
    return CompiledRelease(value, cohorts, build_chain(live, experiments))


@dataclass
class _Failed:
    source: Any
    error: str


class ReleaseCache:
    """Compiled releases per ``organisation/application``, rebuilt only when the value changes."""

    def __init__(self) -> None:
        self.compiled: dict[str, CompiledRelease] = {}
        self.failed: dict[str, _Failed] = {}

    def get(self, key: str, value: Any, releases: Mapping[str, Any]) -> CompiledRelease | None:
        entry = self.compiled.get(key)
        if entry is not None and entry.source is value:
            return entry
        failed = self.failed.get(key)
        if failed is not None and failed.source is value:
            return entry
        if entry is not None and entry.source == value:
            entry.source = value  # same content under a newer snapshot version: keep the memo
            return entry
        try:
            fresh = compile_release(value)
        except ReleaseDataError as e:
            log.error("release data of %s cannot be served (%s); keeping the last good version", key, e)
            self.failed[key] = _Failed(value, str(e))
            return entry
        self.failed.pop(key, None)
        self.compiled[key] = fresh
        for table in (self.compiled, self.failed):
            for stale in [k for k in table if k not in releases]:
                del table[stale]
        return fresh


# ---------------------------------------------------------------------------------------------
# Route.


def release_endpoint(edge: EdgeLike) -> Endpoint:
    """``GET /release/{organisation}/{application}`` over this worker's compiled release cache."""
    cache = ReleaseCache()

    async def serve(request: Request) -> Response:
        view = await edge.view_for(request)
        organisation = request.path_params["organisation"]
        application = request.path_params["application"]
        key = f"{organisation}/{application}"
        value = view.releases.get(key)
        if value is None:
            raise unknown(view, 404, f"no application {key}")
        sent = request_context(request)
        toss = request.query_params.get("toss") or None
        if toss is not None and len(toss) > MAX_TOSS_CHARS:
            raise EdgeError(400, f"toss must be at most {MAX_TOSS_CHARS} characters", field="toss")
        compiled = cache.get(key, value, view.releases)
        if compiled is None:
            raise EdgeError(503, f"the release data of {key} cannot be served", headers={"Retry-After": "5"})
        served = compiled.resolve(sent, toss)
        if served is None:
            raise EdgeError(404, "no release for this dimension context yet")
        headers = {
            "ETag": served.etag,
            "Cache-Control": CACHE_CONTROL,
            "Vary": VARY,
            "X-Request-Id": request_id(request),
        }
        if not_modified(request.headers.get("if-none-match"), served.etag):
            return Response(status_code=304, headers=headers)
        return Response(served.body, media_type="application/json", headers=headers)

    return serve
