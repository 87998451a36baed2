"""The peers benchmark's parts that need no peer binary: the rule rewriting, the three
translations (shape, and for flagd its meaning, through our evaluator's JSON Logic with flagd's
operators), the answer normalisers and agreement checker on canned answers, and the wrk
scripts that send the contexts (run by real wrk against a recording HTTP server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

import evaluator
from bench import datasets, wrk
from bench.peers import check, contexts, rules, translate
from bench.peers.check import Outcome

SETS = {"w1": datasets.w1_flags(), "w2": datasets.w2_flags(), "scale-1000": datasets.scale_flags(1000)}


def ctx(field: str, operator: str, *values: str) -> dict[str, Any]:
    return {"type": "context", "field": field, "operator": operator, "values": list(values)}


def rollout(attribute: str, threshold: int) -> dict[str, Any]:
    return {"type": "rolloutPercentage", "partialRolloutAttribute": attribute, "partialRolloutThreshold": threshold}


# --- rules -----------------------------------------------------------------------------------


def test_dnf_pushes_negation_down_and_distributes_and_over_or() -> None:
    a, b, c = ctx("a", "IS", "1"), ctx("b", "IS", "2"), ctx("c", "IS", "3")
    tree = {
        "type": "negation",
        "filter": {"type": "group", "operator": "or", "filters": [a, {"type": "negation", "filter": b}]},
    }
    [term] = rules.dnf(tree)  # not (a or not b) = (not a) and b
    assert term.conds == (rules.Cond("a", "is", ("1",), True), rules.Cond("b", "is", ("2",)))
    product = rules.dnf(
        {"type": "group", "operator": "and", "filters": [{"type": "group", "operator": "or", "filters": [a, b]}, c]}
    )
    assert [[x.field for x in t.conds] for t in product] == [["a", "c"], ["b", "c"]]
    assert rules.dnf({"type": "constant", "value": False}) == []
    assert rules.dnf({"type": "negation", "filter": {"type": "constant", "value": False}}) == [rules.Term()]


def test_unexpressible_rules_are_refused() -> None:
    with pytest.raises(rules.Unsupported):
        rules.dnf({"type": "negation", "filter": rollout("user.id", 5)})
    with pytest.raises(rules.Unsupported):
        rules.dnf({"type": "jsonLogic", "rule": {"==": [{"var": "x"}, 1]}})
    with pytest.raises(rules.Unsupported):
        rules.dnf({"type": "user", "subType": "email", "comparator": "contain", "values": ["x"]})


def test_config_flags_try_each_variant_in_order_then_plain_on() -> None:
    flag = datasets.w2_flags()[5]  # DevCycle country filter; variants a (context), b (rollout), c
    peer = rules.arms(flag)
    assert [a.outcome for a in peer.arms] == ["a", "b", "c", "on"]
    assert peer.arms[0].term.conds == (
        rules.Cond("user.country", "any_of", ("DE", "FR")),
        rules.Cond("user.email", "contains", ("@acme",)),
    )
    assert peer.arms[1].term.rollouts == (rules.Rollout("user.id", 50_000),)
    assert peer.outcomes == ["off", "a", "b", "c", "on"]


# --- translations: shape ---------------------------------------------------------------------

UNLEASH_OPERATORS = {"IN", "NOT_IN", "STR_CONTAINS", "STR_STARTS_WITH", "NUM_GT", "NUM_LT", "DATE_AFTER", "DATE_BEFORE"}
UNLEASH_OPERATORS |= {"SEMVER_LT", "SEMVER_GT", "SEMVER_EQ"}


@pytest.mark.parametrize("name", SETS)
def test_unleash_features_have_one_strategy_per_arm(name: str) -> None:
    flags = SETS[name]
    doc = translate.unleash(flags)
    assert doc["version"] == 2 and [f["name"] for f in doc["features"]] == [f["key"] for f in flags]
    for flag, feature in zip(flags, doc["features"], strict=True):
        peer = rules.arms(flag)
        assert feature["enabled"] is True and len(feature["strategies"]) == len(peer.arms)
        for arm, strategy in zip(peer.arms, feature["strategies"], strict=True):
            assert strategy["name"] == ("flexibleRollout" if arm.term.rollouts else "default")
            assert {c["operator"] for c in strategy["constraints"]} <= UNLEASH_OPERATORS
            if strategy["name"] == "flexibleRollout":
                assert 0 <= int(strategy["parameters"]["rollout"]) <= 100
                assert strategy["parameters"]["groupId"] == flag["key"]
            variants = strategy.get("variants", [])
            assert [v["name"] for v in variants] == ([] if arm.outcome == "on" else [arm.outcome])
            for v in variants:
                payload = (peer.payloads or {})[v["name"]]
                assert ("payload" in v) == (payload is not None)
                if payload is not None:
                    assert json.loads(v["payload"]["value"]) == payload


def test_unleash_spells_context_names_dates_and_semver_as_unleash_reads_them() -> None:
    flag = {
        "key": "k",
        "targeting": {
            "rules": [
                {
                    "filter": {
                        "type": "group",
                        "operator": "and",
                        "filters": [
                            ctx("user.id", "IS", "u-7"),
                            ctx("company.createdAt", "DATE_AFTER", "2023-06-01"),
                            {"type": "jsonLogic", "rule": {"sem_ver": [{"var": "user.appVersion"}, ">=", "1.2.0"]}},
                            ctx("user.role", "SET"),
                            rollout("company.id", 42_400),
                        ],
                    }
                }
            ]
        },
    }
    [strategy] = translate.unleash([flag])["features"][0]["strategies"]
    named = [(c["contextName"], c["operator"], c["inverted"]) for c in strategy["constraints"]]
    assert named == [
        ("userId", "IN", False),
        ("company.createdAt", "DATE_AFTER", False),
        ("user.appVersion", "SEMVER_LT", True),
        ("user.role", "STR_STARTS_WITH", False),
        ("user.role", "NOT_IN", False),
    ]
    assert strategy["constraints"][1]["value"] == "2023-06-01T00:00:00.000Z"
    assert strategy["parameters"] == {"rollout": "42", "stickiness": "company.id", "groupId": "k"}


def _results(node: Any) -> list[Any]:
    """The values an ``if`` chain can return."""
    if isinstance(node, dict) and "if" in node:
        items = node["if"]
        return [*items[1::2], items[-1]]
    return [node]


@pytest.mark.parametrize("name", SETS)
def test_flagd_flags_return_only_their_own_variants(name: str) -> None:
    flags = SETS[name]
    doc = translate.flagd(flags)["flags"]
    assert list(doc) == [f["key"] for f in flags]
    for flag in flags:
        out = doc[flag["key"]]
        assert out["state"] == "ENABLED" and out["defaultVariant"] == "off"
        kinds = {type(v) for v in out["variants"].values()}
        assert kinds == ({dict} if "config" in flag else {bool})
        assert set(_results(out.get("targeting", "off"))) <= set(out["variants"])
        rolled = "config" in flag or any(rules.has_rollout(r["filter"]) for r in flag["targeting"]["rules"])
        assert ("fractional" in json.dumps(out)) == rolled


@pytest.mark.parametrize("name", SETS)
def test_gofeatureflag_rules_name_existing_variations_and_split_whole(name: str) -> None:
    flags = SETS[name]
    doc = translate.gofeatureflag(flags)
    assert list(doc) == [f["key"] for f in flags]
    for flag in flags:
        out = doc[flag["key"]]
        assert all(rule["query"] for rule in out.get("targeting", []))  # the relay proxy requires one
        for rule in [*out.get("targeting", []), out["defaultRule"]]:
            if "percentage" in rule:
                assert set(rule["percentage"]) <= set(out["variations"])
                assert sum(rule["percentage"].values()) == pytest.approx(100)
            else:
                assert rule["variation"] in out["variations"]


def test_gofeatureflag_queries_use_the_relay_proxy_query_language() -> None:
    flag = datasets.w2_flags()[3]  # company.id NOT_ANY_OF … or (country IS GB and not createdAt after)
    rules_ = translate.gofeatureflag([flag])["flag-0003"]["targeting"]
    assert [r["query"] for r in rules_] == [
        'not (company.id in ["c-1","c-2","c-3","c-4","c-5","c-6","c-7","c-8","c-9"])',
        '(user.country eq "GB") and (not (company.createdAt ge "2023-06-01"))',
    ]
    semver = translate.gofeatureflag([datasets.w2_flags()[4]])["flag-0004"]
    assert semver["targeting"] == [{"name": "arm-0", "query": "user.appVersion >= 3.5.0", "variation": "on"}]
    assert semver["defaultRule"] == {"variation": "off"}
    # A rule without tests is the default rule: a plain rollout, a constant.
    rollout_only = translate.gofeatureflag([datasets.w2_flags()[1]])["flag-0001"]
    assert "targeting" not in rollout_only and rollout_only["defaultRule"] == {
        "percentage": {"on": 8.732, "off": 91.268}
    }
    constant = translate.gofeatureflag([datasets.w2_flags()[6]])["flag-0006"]
    assert "targeting" not in constant and constant["defaultRule"] == {"variation": "on"}


def test_rollout_share_nests_one_attribute_and_multiplies_different_ones() -> None:
    same = (rules.Rollout("user.id", 60_000), rules.Rollout("user.id", 50_000))
    assert translate.rollout_share(same) == 0.5
    assert translate.rollout_share((rules.Rollout("user.id", 50_000), rules.Rollout("company.id", 50_000))) == 0.25


# --- translations: meaning (flagd, through our evaluator's JSON Logic) -------------------------


@pytest.mark.parametrize("name", ["w1", "w2", "scale-1000"])
def test_flagd_targeting_agrees_with_reflag_where_no_rollout_decides(name: str) -> None:
    flags = SETS[name]
    snapshot = evaluator.Snapshot(orjson.dumps({"features": flags}))
    doc = translate.flagd(flags)["flags"]
    compared = 0
    for context in contexts.sample("w1" if name == "w1" else "w2", 20):
        ours = check.reflag_evaluated({"features": orjson.loads(snapshot.evaluate_all(context))})
        theirs: dict[str, Outcome | None] = {}
        for key, out in doc.items():
            variant = evaluator.jsonlogic_apply(out["targeting"], context) if "targeting" in out else "off"
            theirs[key] = check.ofrep_outcome({"value": out["variants"][variant], "variant": variant})
        result = check.compare(flags, ours, theirs)
        assert result.disagreements == []
        compared += result.compared
    assert compared > 10 * len(flags)  # most flags have no rollout


# --- answers and the agreement check ---------------------------------------------------------


def test_ofrep_answers_reduce_to_outcomes_for_boolean_and_object_flags() -> None:
    body = {
        "flags": [
            {"key": "b", "value": True, "variant": "on", "reason": "TARGETING_MATCH"},
            {"key": "c", "value": False, "variant": "off"},
            {"key": "o", "value": {"enabled": True, "payload": {"x": 1}}, "variant": "a"},
            {"key": "p", "value": {"enabled": False, "payload": None}, "variant": "off"},
            {"key": "e", "errorCode": "TARGETING_KEY_MISSING"},
        ]
    }
    assert check.ofrep_bulk(body) == {
        "b": Outcome(True),
        "c": Outcome(False),
        "o": Outcome(True, "a"),
        "p": Outcome(False),
        "e": None,
    }


def test_unleash_lists_only_enabled_toggles_the_rest_are_off() -> None:
    body = {
        "toggles": [
            {"name": "x", "enabled": True, "variant": {"name": "disabled", "enabled": False}},
            {"name": "y", "enabled": True, "variant": {"name": "b", "enabled": True, "payload": {}}},
        ]
    }
    assert check.unleash_bulk(body, ["x", "y", "z"]) == {
        "x": Outcome(True),
        "y": Outcome(True, "b"),
        "z": Outcome(False),
    }


def test_agreement_compares_only_what_no_rollout_decides() -> None:
    w2 = datasets.w2_flags()
    by_key = {f["key"]: f for f in w2}
    plain, rolled, configured = "flag-0003", "flag-0001", "flag-0000"  # context / rollout / config a,b(rollout),c
    assert "config" in by_key[configured] and not rules.has_rollout(
        by_key[configured]["targeting"]["rules"][0]["filter"]
    )
    ours = {plain: Outcome(True), rolled: Outcome(True), configured: Outcome(True, "a")}
    same = check.compare(w2, ours, dict(ours), only=set(ours))
    assert same.compared == 2 and same.disagreements == []
    # A rollout flag may differ; a plain flag may not; a variant decided before any rollout may not.
    theirs = {plain: Outcome(False), rolled: Outcome(False), configured: Outcome(True, "c")}
    bad = check.compare(w2, ours, theirs, only=set(ours))
    assert [d.key for d in bad.disagreements] == [configured, plain]
    # Our variant c comes after the rollout variant b: which one a context gets is not compared.
    after_rollout = {configured: Outcome(True, "c")}
    assert check.compare(w2, after_rollout, {configured: Outcome(True, "b")}, only={configured}).disagreements == []
    # Missing or error answers disagree.
    assert len(check.compare(w2, {plain: Outcome(False)}, {}, only={plain}).disagreements) == 1
    assert len(check.compare(w2, {plain: Outcome(False)}, {plain: None}, only={plain}).disagreements) == 1


# --- contexts on the wire --------------------------------------------------------------------


def test_one_context_spelled_for_each_api() -> None:
    c = contexts.w2_context(9, 13)
    assert contexts.ofrep_body(c)["context"]["targetingKey"] == "user-9"
    assert contexts.ofrep_body(c)["context"]["company"]["seats"] == 13
    unleash = contexts.unleash_context(c)
    assert unleash["userId"] == "user-9" and unleash["properties"]["user.beta"] == "false"
    assert "user.id" not in unleash["properties"]
    assert dict(parse_qsl(contexts.unleash_query(c)))["properties[company.plan]"] == c["company"]["plan"]
    assert dict(parse_qsl(contexts.reflag_query(c)))["context.company.createdAt"] == "2023-02-15T00:00:00.000Z"


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(self.seen) < 50:
            self.seen.append((self.command, self.path, body))
        try:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        except (BrokenPipeError, ConnectionResetError):  # wrk hangs up when its time is over
            pass

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("dataset", ["w1", "w2"])
@pytest.mark.parametrize("wire", contexts.WIRES)
def test_wrk_scripts_send_unique_well_formed_contexts(recorder: str, dataset: str, wire: contexts.Wire) -> None:
    _Recorder.seen = []
    path = "/features/evaluated?publishableKey=k" if wire == "reflag-query" else "/p"
    result = wrk.run(recorder, contexts.lua_script(dataset, wire, path, {"Authorization": "t"}), 1, 1, cpu=None)
    assert result.requests > 2 and result.errors == 0
    ids = set()
    for method, got_path, body in _Recorder.seen:
        url = urlsplit(got_path)
        if wire in ("ofrep", "unleash-json"):
            assert method == "POST" and url.path == "/p"
            doc = json.loads(body)
            if wire == "ofrep":
                context = doc["context"]
                assert context["targetingKey"] == context["user"]["id"]
                ids.add(context["targetingKey"])
                if dataset == "w2":
                    assert isinstance(context["company"]["seats"], int) and isinstance(context["user"]["beta"], bool)
            else:
                ids.add(doc["userId"])
                assert "company.plan" in doc["properties"]
        else:
            query = dict(parse_qsl(url.query))
            assert method == "GET"
            if wire == "reflag-query":
                assert query["publishableKey"] == "k" and "context.company.plan" in query
                ids.add(query["context.user.id"])
            else:
                assert "properties[company.plan]" in query
                ids.add(query["userId"])
            if dataset == "w2":
                created = query.get("context.company.createdAt") or query["properties[company.createdAt]"]
                assert created.endswith("T00:00:00.000Z")
    assert len(ids) == len(_Recorder.seen) > 2


# --- report ----------------------------------------------------------------------------------


def test_report_with_a_baseline_adds_before_after_columns_and_keeps_it_out_of_the_peers() -> None:
    from bench.peers import run

    def cell(rps: float) -> dict[str, float]:
        return {"rps": rps, "p99_ms": 1.0, "error_share": 0.0}

    label = run.ROWS[0].label
    results: dict[str, Any] = {
        "meta": {
            "date": "2026-12-05",
            "command": "python -m bench peers --baseline /b",
            "rounds": 1,
            "seconds": 1,
            "connections": 8,
            "cpus": 2,
            "cpu_model": "x",
            "loadavg_start": "0",
            "versions": {},
            "servers": [run.OURS, run.BASELINE, "unleash-edge"],
        },
        "medians": {label: {run.OURS: cell(300), run.BASELINE: cell(100), "unleash-edge": cell(200)}},
        "body_bytes": {},
        "memory_mb": {},
        "agreement": [],
        "errors": {},
    }
    line = next(x for x in run.markdown(results, None).splitlines() if x.startswith(f"| {label} | 300"))
    # The best peer is the real peer (200), not our own baseline (100); ours/baseline is 3x.
    assert "unleash-edge 200" in line and "| 1.50x |" in line
    assert line.endswith("| 100 (p99 1.0 ms) | 3.00x |")
