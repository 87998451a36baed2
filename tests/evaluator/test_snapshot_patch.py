"""A patched snapshot (``Snapshot.patch``, issue 21) keeps what the other features add to a
compiled snapshot: its own evaluation counts, indexed by its own flag positions (issue 18), the
DevCycle overrides of the shared DevCycle section (issue 18), and the rule that DevCycle-decided
flags are remote-only for ``GET /features``; a patch that replaces the document-wide members too
(``extras``) answers as a full compile on every route."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

import evaluator
from tests.evaluator.test_devcycle_edge import CONFIG, NOW, context_of, document, users


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


# A change of the document-wide members (the DevCycle section, its overrides, custom data types,
# ``sdkVisibility``) is a patch too (``patch(..., extras=...)``): random sequences of flag and
# document changes, applied as patches, answer exactly as a full compile on every route.

DEVCYCLE_KEYS = [f["key"] for f in CONFIG["features"]]
REFLAG_KEYS = ["r0", "r1", "r2", "r3"]
KEYS = DEVCYCLE_KEYS + REFLAG_KEYS
KINDS = [None, "client", "server", "mobile"]

country_is = {"type": "context", "field": "user.country", "operator": "IS", "values": ["DE", "CA"]}
rules = st.sampled_from(
    [
        {"type": "constant", "value": True},
        {"type": "context", "field": "user.id", "operator": "SET", "values": []},
        country_is,
        {"type": "rolloutPercentage", "partialRolloutAttribute": "user.id", "partialRolloutThreshold": 40000},
        # DevCycle's filter language: remote-only for GET /features, and it reads the nested user.
        {"type": "user", "subType": "country", "comparator": "=", "values": ["DE"]},
    ]
)
variants = st.lists(
    st.fixed_dictionaries(
        {"key": st.sampled_from(["v1", "v2"]), "payload": st.integers(0, 3)}, optional={"filter": rules}
    ),
    max_size=2,
)


@st.composite
def definitions(draw: st.DrawFn, key: str) -> dict[str, Any]:
    targeting = {
        "version": draw(st.integers(1, 3)),
        "rules": [{"filter": f} for f in draw(st.lists(rules, max_size=2))],
    }
    out: dict[str, Any] = {"key": key, "targeting": targeting}
    if draw(st.booleans()):
        out["config"] = {"version": draw(st.integers(1, 3)), "variants": draw(variants)}
    return out


@st.composite
def devcycle_sections(draw: st.DrawFn) -> dict[str, Any] | None:
    """CONFIG with some of its features (so flags become and stop being DevCycle-decided), its
    distributions and audiences moved, and passthrough rollouts on or off."""
    if draw(st.integers(0, 4)) == 0:
        return None
    config = copy.deepcopy(CONFIG)
    kept = draw(st.lists(st.sampled_from(range(len(config["features"]))), min_size=1, unique=True))
    config["features"] = [config["features"][i] for i in sorted(kept)]
    for feature in config["features"]:
        for target in feature["configuration"]["targets"]:
            if draw(st.booleans()):
                target["distribution"].reverse()
                shares = [d["percentage"] for d in target["distribution"]]
                for d, share in zip(target["distribution"], reversed(shares), strict=True):
                    d["percentage"] = share
    for audience in config["audiences"].values():
        if draw(st.booleans()):
            audience["filters"]["operator"] = "or"
    config["project"]["settings"]["disablePassthroughRollouts"] = draw(st.booleans())
    return config


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    config = draw(devcycle_sections())
    if config is not None:
        extras["devcycle"] = config
        features = config["features"]
        if draw(st.booleans()):
            feature = draw(st.sampled_from(features))
            variation = draw(st.sampled_from(feature["variations"]))
            extras["devcycleOverrides"] = {draw(st.sampled_from(["qa", "u1"])): {feature["_id"]: variation["_id"]}}
    if draw(st.booleans()):
        extras["customDataTypes"] = {"score": "Number", "tenant": draw(st.sampled_from(["Number", "String"]))}
    hidden = draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(["client", "server", "mobile"]), max_size=3))
    if hidden:
        extras["sdkVisibility"] = {key: {kind: False} for key, kind in hidden.items()}
    return extras


@st.composite
def steps(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any] | None], dict[str, Any] | None, bool]:
    """Flags upserted (a definition) or removed (None), a new document (or None: unchanged), and
    whether a document change comes as a patch (else it is compiled anew, as a worker that lost
    its snapshot does, and the next step patches that)."""
    removed: dict[str, bool] = draw(st.dictionaries(st.sampled_from(KEYS), st.booleans(), max_size=3))
    flags = {key: None if gone else draw(definitions(key)) for key, gone in removed.items()}
    return flags, draw(st.one_of(st.none(), documents())), draw(st.integers(0, 5)) > 0


def full(extras: dict[str, Any], flags: dict[str, tuple[str, dict[str, Any]]]) -> evaluator.Snapshot:
    return evaluator.Snapshot.assemble(orjson.dumps(extras), [entry(o, d) for o, d in flags.values()])


def answers(snapshot: evaluator.Snapshot, users: list[dict[str, Any]], stored: list[bytes]) -> list[Any]:
    """What every route the snapshot serves answers (``GET /features`` from the ``stored``
    entries, as the edge builds it), and what it counted answering it."""
    snapshot.drain_counts()
    out: list[Any] = [
        snapshot.flag_keys(),
        snapshot.definitions_json(stored),
        snapshot.local_definitions_json(stored),
        sorted(snapshot.remote_only()),
        [snapshot.hidden_from(kind) for kind in KINDS if kind is not None],
        snapshot.devcycle_splits(),
    ]
    for user in users:
        context = context_of(user)
        for kind in KINDS:
            for debug, enabled_only in [(True, False), (False, True)]:
                out.append(
                    snapshot.evaluate_all(context, now_ms=NOW, debug=debug, enabled_only=enabled_only, key_kind=kind)
                )
            for has_key in (True, False):
                out.append(
                    snapshot.ofrep_all(
                        context, flag_state_version=3, has_targeting_key=has_key, now_ms=NOW, key_kind=kind
                    )
                )
            out.append(snapshot.devcycle_bucket(user, NOW, key_kind=kind))
            for key in KEYS:
                out.append(snapshot.evaluate_flag(key, context, now_ms=NOW, key_kind=kind))
                out.append(
                    snapshot.ofrep_flag(key, context, flag_state_version=3, has_targeting_key=True, key_kind=kind)
                )
        for part in ("config", "variables", "features", "ofrep"):
            out.append(snapshot.devcycle_json(user, NOW, part))
        for variable in CONFIG["variables"][:3]:
            out.append(snapshot.devcycle_json(user, NOW, "variable", variable["key"]))
    out.append(drained(snapshot))
    return out


override_users = st.sampled_from([{"user_id": "qa", "country": "DE"}, {"user_id": "u1", "appVersion": "2.1"}])


@settings(max_examples=60, deadline=None)
@given(
    first=documents(),
    sequence=st.lists(steps(), min_size=1, max_size=5),
    users=st.lists(st.one_of(users, override_users), min_size=1, max_size=3),
)
def test_patched_document_changes_answer_as_a_full_compile(
    first: dict[str, Any],
    sequence: list[tuple[dict[str, dict[str, Any] | None], dict[str, Any] | None, bool]],
    users: list[dict[str, Any]],
) -> None:
    extras = first
    flags: dict[str, tuple[str, dict[str, Any]]] = {key: (f"{i:03}", constant(key, True)) for i, key in enumerate(KEYS)}
    snapshot = full(extras, flags)
    for n, (changed, document_, as_patch) in enumerate(sequence):
        upserts, removed = [], []
        for key, definition in changed.items():
            if definition is None:
                flags.pop(key, None)
                removed.append(key)
            else:
                # A new order moves the flag (as a renamed feature's flag does).
                flags[key] = (f"{KEYS.index(key):03}" if n % 2 else f"{n}{key}", definition)
                upserts.append(entry(*flags[key]))
        previous = extras
        if document_ is not None:
            extras = document_
        if document_ is not None and not as_patch:
            snapshot = full(extras, flags)
            continue
        before = snapshot
        new_extras = None if document_ is None else orjson.dumps(extras)
        snapshot = before.patch(upserts, removed, new_extras)
        stored = [entry(o, d) for o, d in flags.values()]
        assert answers(snapshot, users, stored) == answers(full(extras, flags), users, stored)
        # Unchanged Reflag-path flags the document says nothing about are shared, not recompiled.
        visibility = {**previous.get("sdkVisibility", {}), **extras.get("sdkVisibility", {})}
        for key in REFLAG_KEYS:
            if key in flags and key not in changed and key not in visibility:
                assert snapshot.shares_flag(before, key), key
