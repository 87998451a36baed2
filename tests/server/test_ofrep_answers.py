"""The evaluator's own OFREP answers (``Snapshot.ofrep_all`` / ``ofrep_flag``, written in Rust)
are, bit for bit, the answers the edge built before from the evaluator's debug output
(``tests/server/ofrep_reference.py``): on W1 and W2, the OFREP test flags, flags DevCycle's
bucketing decides, and generated flags with odd keys and payloads, for generated contexts, with
and without a targeting key, for every key kind."""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evaluator
from bench import datasets
from bench.peers import contexts
from server.ofrep import event_streams, reflag_context
from tests.evaluator.test_devcycle_edge import CONFIG, NOW, context_of, users
from tests.evaluator.test_devcycle_edge import document as devcycle_document
from tests.server import ofrep_reference as reference
from tests.server.ofrep_support import FEATURES

KINDS = [None, "server", "client", "mobile"]
VERSION = 41


def versioned(flags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Targeting and config versions on every other flag (the answers carry them)."""
    out = copy.deepcopy(flags)
    for i, flag in enumerate(out):
        if i % 2 == 0:
            flag.setdefault("targeting", {})["version"] = i + 1
            if "config" in flag:
                flag["config"]["version"] = i + 2
    return out


class Compiled(NamedTuple):
    """A snapshot and its flag definitions (which the reference reads; the snapshot keeps only
    their hashes)."""

    snapshot: evaluator.Snapshot
    features: list[dict[str, Any]]


def compiled(flags: list[dict[str, Any]], **extra: Any) -> Compiled:
    return Compiled(evaluator.Snapshot(orjson.dumps({"features": flags, **extra})), flags)


W1 = compiled(versioned(datasets.w1_flags()))
W2_FLAGS = versioned(datasets.w2_flags())
# Some W2 flags hidden from client or mobile keys.
W2 = compiled(W2_FLAGS, sdkVisibility={f["key"]: {"client": False} for f in W2_FLAGS[::7]})
OFREP = compiled(FEATURES)
_DEVCYCLE_DOC = devcycle_document(CONFIG)
DEVCYCLE = Compiled(evaluator.Snapshot(orjson.dumps(_DEVCYCLE_DOC)), _DEVCYCLE_DOC["features"])
STREAMS = event_streams("pk_some_key", VERSION, "https://edge.example")


def answers(flags: Compiled, context: dict[str, Any], kind: str | None, now_ms: float, keys: list[str]) -> None:
    """Assert the evaluator's bulk answer and single answers for ``keys`` are the reference's."""
    snapshot = flags.snapshot
    ctx = reflag_context(context)
    tail = b',"metadata":{"flagStateVersion":%d},"eventStreams":' % VERSION + orjson.dumps(STREAMS)
    got = snapshot.ofrep_all(
        ctx.reflag,
        flag_state_version=VERSION,
        has_targeting_key=ctx.has_targeting_key,
        tail=tail,
        now_ms=now_ms,
        key_kind=kind,
    )
    expected = {
        "flags": reference.evaluate_all(snapshot, flags.features, VERSION, ctx, kind, now_ms),
        "metadata": {"flagStateVersion": VERSION},
        "eventStreams": STREAMS,
    }
    assert got == orjson.dumps(expected)
    single_tail = b',"eventStreams":' + orjson.dumps(STREAMS)
    for key in keys:
        one = snapshot.ofrep_flag(
            key,
            ctx.reflag,
            flag_state_version=VERSION,
            has_targeting_key=ctx.has_targeting_key,
            tail=single_tail,
            now_ms=now_ms,
            key_kind=kind,
        )
        ref = reference.evaluate_one(snapshot, VERSION, key, ctx, kind, now_ms)
        if ref is None:
            assert one is None, key
        elif "errorCode" in ref:
            assert one == (False, orjson.dumps(ref)), key
        else:
            assert one == (True, orjson.dumps({**ref, "eventStreams": STREAMS})), key


def ofrep_shaped(context: dict[str, Any], targeting: str | None, drop_user_id: bool) -> dict[str, Any]:
    """A context as OFREP providers send it: maybe a ``targetingKey``, maybe no ``user.id``."""
    out = copy.deepcopy(context)
    if drop_user_id:
        out.get("user", {}).pop("id", None)
    if targeting is not None:
        out["targetingKey"] = targeting
    return out


targeting = st.one_of(st.none(), st.just(""), st.text(max_size=8))
now = st.floats(1.6e12, 1.9e12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    i=st.integers(0, 40),
    r=st.integers(0, 1_000_000),
    key=targeting,
    drop=st.booleans(),
    kind=st.sampled_from(KINDS),
    at=now,
)
def test_w2_answers_are_the_reference(i: int, r: int, key: str | None, drop: bool, kind: str | None, at: float) -> None:
    keys = [f["key"] for f in W2_FLAGS[i : i + 12]] + ["no-such-flag"]
    answers(W2, ofrep_shaped(contexts.w2_context(i, r), key, drop), kind, at, keys)


@settings(max_examples=60, deadline=None)
@given(i=st.integers(0, 40), key=targeting, drop=st.booleans(), kind=st.sampled_from(KINDS), at=now)
def test_w1_answers_are_the_reference(i: int, key: str | None, drop: bool, kind: str | None, at: float) -> None:
    keys = [f["key"] for f in datasets.w1_flags()]
    answers(W1, ofrep_shaped(contexts.w1_context(i), key, drop), kind, at, keys)


ofrep_contexts = st.fixed_dictionaries(
    {},
    optional={
        "targetingKey": st.one_of(st.just(""), st.sampled_from(["u1", "u-vip", "someone"])),
        "user": st.fixed_dictionaries(
            {},
            optional={
                "id": st.sampled_from(["u-vip", "u-other", "u1"]),
                "tier": st.sampled_from(["gold", "silver"]),
                "email": st.sampled_from(["ada@example.com", "bob@example.com"]),
            },
        ),
        "company": st.fixed_dictionaries(
            {}, optional={"plan": st.sampled_from(["pro", "enterprise", "free"]), "id": st.sampled_from(["c1", "c2"])}
        ),
    },
)


@settings(max_examples=150, deadline=None)
@given(context=ofrep_contexts, kind=st.sampled_from(KINDS), at=now)
def test_ofrep_test_flags_are_the_reference(context: dict[str, Any], kind: str | None, at: float) -> None:
    answers(OFREP, context, kind, at, [f["key"] for f in FEATURES])


@settings(max_examples=100, deadline=None)
@given(user=users, key=targeting, offset=st.integers(-40 * 86_400_000, 40 * 86_400_000))
def test_devcycle_decided_flags_are_the_reference(user: dict[str, Any], key: str | None, offset: int) -> None:
    keys = [f["key"] for f in CONFIG["features"]]
    answers(DEVCYCLE, ofrep_shaped(context_of(user), key, False), None, NOW + offset, keys)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# Unassigned code points (and surrogates, which a snapshot cannot hold) left out: Python's repr
# escapes them after its own Unicode tables, the evaluator keeps them.
odd_keys = st.text(st.characters(blacklist_categories=("Cn", "Cs")), min_size=1, max_size=10)


@settings(max_examples=150, deadline=None)
@given(
    keys=st.lists(odd_keys, min_size=1, max_size=4, unique=True),
    payloads=st.lists(json_values, min_size=2, max_size=2),
    plan=st.sampled_from(["pro", "free"]),
    has_user=st.booleans(),
)
def test_odd_keys_and_payloads_are_the_reference(
    keys: list[str], payloads: list[Any], plan: str, has_user: bool
) -> None:
    def flag(key: str, n: int) -> dict[str, Any]:
        rules = [
            {"filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": ["pro"]}},
            {
                "filter": {
                    "type": "rolloutPercentage",
                    "partialRolloutAttribute": "user.id",
                    "partialRolloutThreshold": 50_000,
                }
            },
        ][: n % 3]
        variants = [
            {
                "key": key,
                "filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": ["pro"]},
                "payload": payloads[0],
            },
            {"key": key + "-b", "payload": payloads[1]},
        ]
        return {"key": key, "targeting": {"version": n, "rules": rules}, "config": {"version": n, "variants": variants}}

    snapshot = compiled([flag(k, n) for n, k in enumerate(keys)])
    context = {"company": {"plan": plan}, **({"user": {"id": "u1"}} if has_user else {})}
    answers(snapshot, context, None, 1.7e12, keys)


@pytest.mark.parametrize("key", ["plain-key", "it's", 'say "hi"', "tab\tkey", "back\\slash", "é-ü", "nbsp\u00a0x"])
def test_targeting_key_missing_details_name_the_key_as_python_does(key: str) -> None:
    snapshot = compiled(
        [
            {
                "key": key,
                "targeting": {
                    "rules": [
                        {
                            "filter": {
                                "type": "rolloutPercentage",
                                "partialRolloutAttribute": "user.id",
                                "partialRolloutThreshold": 50_000,
                            }
                        }
                    ]
                },
            }
        ]
    )
    answers(snapshot, {}, None, 1.7e12, [key])


# --- DevCycle variables: one variable's answer written by the evaluator ------------------------


def devcycle_one_before(
    snapshot: evaluator.Snapshot, user: dict[str, Any], now_ms: int, key: str, hidden: set[str], tail: bytes
) -> bytes | None:
    """The single-variable answer as the edge built it in Python before the evaluator wrote it:
    the ``ofrep_flag`` part parsed, ``flagStateVersion`` set in its metadata, serialized again."""
    raw = snapshot.devcycle_json(user, now_ms, "ofrep_flag", key, hidden)
    if raw is None:
        return None
    flag: dict[str, Any] = orjson.loads(raw)
    flag["metadata"]["flagStateVersion"] = VERSION
    return orjson.dumps(flag)[:-1] + tail + b"}"


def with_values(config: dict[str, Any], values: list[Any], strings: list[str], shared: bool) -> dict[str, Any]:
    """``config`` with generated values for its JSON and String variables (Boolean and Number ones
    keep theirs), a String variable added to the first feature, and with ``shared`` a copy of the
    first feature under another key and id (two features serving the same variable keys: the
    evaluator's non-streaming path)."""
    out = copy.deepcopy(config)
    out["variables"].append({"_id": "0123456789abcdef01234567", "key": "odd-string", "type": "String"})
    types = {v["_id"]: v["type"] for v in out["variables"]}
    n = 0
    for feature in out["features"]:
        for variation in feature["variations"]:
            if feature is out["features"][0]:
                variation["variables"].append({"_var": "0123456789abcdef01234567", "value": ""})
            for variable in variation["variables"]:
                if types[variable["_var"]] == "JSON":
                    variable["value"] = values[n % len(values)]
                elif types[variable["_var"]] == "String":
                    variable["value"] = strings[n % len(strings)]
                n += 1
    if shared:
        twin = copy.deepcopy(out["features"][0])
        twin["key"], twin["_id"] = "twin-feature", "fedcba9876543210fedcba98"
        out["features"].append(twin)
    return out


json_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=3)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    user=users,
    values=st.lists(json_objects, min_size=1, max_size=4),
    strings=st.lists(st.text(max_size=8), min_size=1, max_size=3),
    shared=st.booleans(),
    hide=st.lists(st.integers(0, 5), max_size=2),
    offset=st.integers(-40 * 86_400_000, 40 * 86_400_000),
)
def test_devcycle_single_answer_is_the_one_built_in_python_before(
    user: dict[str, Any], values: list[Any], strings: list[str], shared: bool, hide: list[int], offset: int
) -> None:
    config = with_values(CONFIG, values, strings, shared)
    snapshot = evaluator.Snapshot(orjson.dumps(devcycle_document(config)))
    hidden = {config["features"][i]["_id"] for i in hide if i < len(config["features"])}
    tail = b',"eventStreams":' + orjson.dumps(STREAMS)
    keys = [v["key"] for v in config["variables"]] + ["no-such-variable"]
    for key in keys:
        before = devcycle_one_before(snapshot, user, NOW + offset, key, hidden, tail)
        got = snapshot.devcycle_ofrep_flag(user, NOW + offset, key, hidden, flag_state_version=VERSION, tail=tail)
        assert got == before, key
