"""Airborne's public release answer, ``GET /release/{organisation}/{application}``, computed the
same way by both processes: the edge from its LMDB view, the control plane from the LMDB it
publishes (so a client configured with the document's single base URL gets the same bytes,
ETag and errors from either port).

The control plane publishes one value per application in the LMDB ``releases`` table
(``control_plane/releases_snapshot.py`` builds it). For each request:

1. the dimension context comes from the ``x-dimensions`` header (``x-dimension`` is accepted too,
   as Airborne clients send it): a JSON object of scalars, or ``k=v;k2=v2`` with URL-encoded
   values (``+`` stays a plus, SemVer build metadata uses it). Values compare as strings (numbers
   and booleans in their JSON spelling); a ``null`` is an absent dimension;
2. every cohort dimension is computed from its JSON Logic rule (a value the client sent for a
   cohort dimension is replaced);
3. the application's release chain (below) is walked and the first step that takes the client is
   served: a live release takes every client it matches; an experiment takes a client it matches
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

Response (the seed's shape, plus the fields Airborne's own server serves): ``{"version": <config
version name>, "config": {"version": <config number>, "boot_timeout", "package_timeout",
"properties"}, "package": {"version", "index": <index file URL>, "properties", "important":
[{"url", "file_path", "checksum", "size"}], "lazy": [...]}, "resources": [...]}``; ``checksum``
(SHA-256 hex) and ``size`` (bytes) are there for every file the control plane verified.

This package never imports the evaluator (``tests/test_import_graph.py``): the rule evaluation,
hash and fingerprint come in as an :class:`Engine`, and both processes pass the ``evaluator``
module. Failures are :class:`Refused` (status, message, offending field, headers); each process
answers them in Airborne's error shape with its own error type.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

import orjson

from contract.etags import etag_of, not_modified

log = logging.getLogger("contract.airborne_release")

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
# Seconds a client should wait before asking again for an application whose data cannot be served.
UNSERVABLE_RETRY_AFTER = "5"

Context = dict[str, str]


class Engine(Protocol):
    """What resolution needs from the evaluator; the ``evaluator`` module is one."""

    @property
    def EvaluatorError(self) -> type[Exception]: ...

    @property
    def RuleError(self) -> type[Exception]: ...

    def jsonlogic_apply(self, rule: Any, data: Any = None) -> Any: ...

    def murmur3_32(self, data: str, seed: int = 0) -> int: ...

    def fingerprint(self, data: bytes) -> str: ...


class ReleaseDataError(ValueError):
    """A published release value that cannot be served."""


class Refused(Exception):
    """A request the release route refuses: HTTP status, message, the offending request field
    (a detail of the error body) and extra headers."""

    def __init__(self, status: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


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


def _bad(message: str, field: str = "x-dimensions") -> Refused:
    return Refused(400, message, field=field)


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
    """The context of an ``x-dimensions`` header value (JSON object or ``k=v;k2=v2``); 400 if malformed.

    ``raw`` is the header as the ASGI server decodes it (latin-1), so UTF-8 text is re-read here."""
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


def request_context(headers: Mapping[str, str]) -> Context:
    """The context a request sends: the first of :data:`HEADERS` present."""
    for header in HEADERS:
        raw = headers.get(header)
        if raw is not None:
            return parse_dimensions(raw)
    return {}


def bucket(engine: Engine, experiment_id: str, identifier: str) -> int:
    """The client's bucket in ``[0, 10000)`` for one experiment; in when ``bucket < traffic * 100``."""
    return (engine.murmur3_32(f"{experiment_id}.{identifier}") * BUCKETS) >> 32


def in_experiment(engine: Engine, experiment_id: str, traffic: int, identifier: str | None) -> bool:
    if traffic >= 100:
        return True
    if traffic <= 0 or identifier is None:
        return False
    return bucket(engine, experiment_id, identifier) < traffic * (BUCKETS // 100)


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

    engine: Engine
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
            out = self.engine.jsonlogic_apply(self.residual, data)
        except self.engine.EvaluatorError as e:
            log.warning("cohort dimension %s: rule failed for this context (%s); using otherwise", self.name, e)
            return OTHERWISE
        result = out if isinstance(out, str) and out in self.names else OTHERWISE
        if self.memoize and len(self.memo) < MEMO_ENTRIES:
            self.memo[v] = result
        return result


def compile_cohort(entry: Mapping[str, Any], engine: Engine) -> CohortDimension:
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
        engine.jsonlogic_apply(residual, {})
    except engine.RuleError as e:
        where, reason = getattr(e, "path", "$"), getattr(e, "reason", str(e))
        raise ReleaseDataError(f"cohort dimension {name}: rule does not compile at {where}: {reason}") from None
    except engine.EvaluatorError:
        pass  # compiles; this particular (empty) context just does not evaluate
    read: set[Any] = set()
    _vars(residual, read)
    return CohortDimension(
        engine=engine,
        name=name,
        depends_on=depends_on,
        members=members,
        residual=residual,
        memoize=read <= {depends_on},
        names=frozenset(n for n, _ in pairs) | {OTHERWISE},
    )


def _file(entry: Any) -> dict[str, Any]:
    """A served file: URL and path, plus the SHA-256 checksum and size once the control plane
    verified them (Airborne's SDKs check a download against ``checksum``)."""
    out: dict[str, Any] = {"url": str(entry["url"]), "file_path": str(entry["file_path"])}
    checksum, size = entry.get("checksum"), entry.get("size")
    if checksum and size:
        out["checksum"] = str(checksum)
        out["size"] = int(size)
    return out


def serve_body(content: Mapping[str, Any], engine: Engine) -> Served:
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
    return Served(body, etag_of(body, engine.fingerprint))


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
    engine: Engine
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
            if step.traffic is None or in_experiment(self.engine, step.id, step.traffic, identifier):
                return step.served
        return None


def build_chain(live: list[tuple[int, Step]], experiments: list[tuple[int, Step]]) -> list[Step]:
    """Most specific first; at one weight experiments before live; each list keeps its own (newest
    first) order, as the control plane publishes it. 0% experiments are left out."""
    ranked = [(-w, 0, i, step) for i, (w, step) in enumerate(experiments) if step.traffic]
    ranked += [(-w, 1, i, step) for i, (w, step) in enumerate(live)]
    ranked.sort(key=lambda t: t[:3])
    return [step for *_, step in ranked]


def compile_release(value: Any, engine: Engine) -> CompiledRelease:
    """Everything one application's release value needs at request time; ReleaseDataError if unusable."""
    if not isinstance(value, dict) or value.get("format") != SNAPSHOT_FORMAT:
        found = value.get("format") if isinstance(value, dict) else type(value).__name__
        raise ReleaseDataError(f"unsupported release data format {found!r}")
    try:
        cohorts = [
            compile_cohort(d, engine) for d in value.get("dimensions") or [] if d.get("dimension_type") == "cohort"
        ]
        live = [
            (int(e["weight"]), Step(str(e["id"]), _conditions(e.get("dimensions", {})), None, serve_body(e, engine)))
            for e in value.get("live", [])
        ]
        experiments = [
            (
                int(e["weight"]),
                Step(
                    str(e["id"]),
                    _conditions(e.get("dimensions", {})),
                    int(e.get("traffic_percentage", 0)),
                    serve_body(e["experimental"], engine),
                ),
            )
            for e in value.get("experiments", [])
        ]
    except ReleaseDataError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ReleaseDataError(f"{type(e).__name__}: {e}") from None
    return CompiledRelease(engine, value, cohorts, build_chain(live, experiments))


@dataclass
class _Failed:
    source: Any
    error: str


class ReleaseCache:
    """Compiled releases per ``organisation/application``, rebuilt only when the value changes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.compiled: dict[str, CompiledRelease] = {}
        self.failed: dict[str, _Failed] = {}

    def get(self, key: str, value: Any, releases: Container[str] | None = None) -> CompiledRelease | None:
        """The compiled release of ``value`` (the last good one if it does not compile, None if
        there never was one). ``releases``: the keys that still exist, when the caller knows them
        all (the others are dropped)."""
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
            fresh = compile_release(value, self.engine)
        except ReleaseDataError as e:
            log.error("release data of %s cannot be served (%s); keeping the last good version", key, e)
            self.failed[key] = _Failed(value, str(e))
            return entry
        self.failed.pop(key, None)
        self.compiled[key] = fresh
        if releases is not None:
            for table in (self.compiled, self.failed):
                for stale in [k for k in table if k not in releases]:
                    del table[stale]
        return fresh

    def forget(self, key: str) -> None:
        """``key`` no longer exists."""
        self.compiled.pop(key, None)
        self.failed.pop(key, None)


# ---------------------------------------------------------------------------------------------
# The answer.


@dataclass(frozen=True)
class Answer:
    """A 200 with the body or a 304 without one, and the headers both carry."""

    status: int
    body: bytes
    headers: dict[str, str]


def answer(
    cache: ReleaseCache,
    key: str,
    value: Any,
    headers: Mapping[str, str],
    toss: str | None,
    releases: Container[str] | None = None,
) -> Answer:
    """The answer for one request to application ``key`` whose published value is ``value``
    (the caller answers an unknown application itself); :class:`Refused` for a malformed request,
    data that cannot be served (503) or a context no release takes (404)."""
    sent = request_context(headers)
    toss = toss or None
    if toss is not None and len(toss) > MAX_TOSS_CHARS:
        raise Refused(400, f"toss must be at most {MAX_TOSS_CHARS} characters", field="toss")
    compiled = cache.get(key, value, releases)
    if compiled is None:
        raise Refused(
            503, f"the release data of {key} cannot be served", headers={"Retry-After": UNSERVABLE_RETRY_AFTER}
        )
    served = compiled.resolve(sent, toss)
    if served is None:
        raise Refused(404, "no release for this dimension context yet")
    out = {"ETag": served.etag, "Cache-Control": CACHE_CONTROL, "Vary": VARY}
    if not_modified(headers.get("if-none-match"), served.etag):
        return Answer(304, b"", out)
    return Answer(200, served.body, out)
