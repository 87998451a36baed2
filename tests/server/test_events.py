"""SDK event intake on the edge: auth, validation, ids and what lands in the spool."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from contract.intake import ROTATED_SUFFIX
from control_plane.events_consumer import consume_spool
from server.events import (
    DISK_LOW,
    RATE_LIMITED_ADDRESS,
    RATE_LIMITED_KEY,
    REFUSALS,
    SPOOL_FULL,
    EventIntake,
    Spool,
    SpoolBudget,
    SpoolRefused,
    rotate_bytes,
)
from server.ratelimit import RateLimiter
from tests.control_plane.conftest import assert_error
from tests.control_plane.devcycle_support import Project, project
from tests.server.stack import Stack, stack

USER = {"userId": "u1", "attributes": {"plan": "pro"}}
VALID: dict[str, dict[str, Any]] = {
    "/features/events": {
        "action": "evaluate",
        "key": "feature1",
        "targetingVersion": 42,
        "evalContext": {"user": {"id": "john_doe"}, "company": {"id": "acme_inc"}},
        "evalResult": False,
        "evalRuleResults": [False, False],
        "evalMissingFields": ["f1"],
    },
    "/user": {
        "userId": 1234567890,
        "attributes": {"name": "Rasmus", "some_number": 12},
        "timestamp": "2024-01-01T10:00:00Z",
    },
    "/company": {"companyId": 101112231415, "attributes": {"plan": "enterprise"}, "userId": 1234567890},
    "/event": {"event": "Sent message", "userId": 1234567890, "attributes": {"position": "popover"}},
    "/feedback": {"key": "flag_key", "userId": 1234567890, "companyId": 1011, "score": 4, "comment": "Nice"},
}
TYPES = {"/features/events": "feature-flag-event", "/user": "user", "/company": "company", "/event": "event"}


@dataclass
class Keys:
    client: str
    server: str
    mobile: str


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path) as st:
        yield st


@pytest.fixture
def p(s: Stack) -> Project:
    p = project(s.api)
    s.sync()
    return p


def _keys(p: Project, env: str = "development") -> Keys:
    sdk = p.environments[env]["sdkKeys"]
    return Keys(sdk["client"][0]["key"], sdk["server"][0]["key"], sdk["mobile"][0]["key"])


def _spool_lines(s: Stack) -> list[dict[str, Any]]:
    """Every line of every spool file, headers included, oldest file first."""
    directory = s.data_dir / "events"
    if not directory.is_dir():
        return []
    lines = []
    for f in sorted(directory.glob("spool-*.jsonl"), key=lambda f: f.stat().st_mtime_ns):
        lines += [orjson.loads(line) for line in f.read_bytes().splitlines()]
    return lines


def _spooled(s: Stack) -> list[dict[str, Any]]:
    return [line for line in _spool_lines(s) if "spool" not in line]


def _post(s: Stack, path: str, body: Any, key: str, **kwargs: Any) -> Any:
    return s.edge.post(path, params={"publishableKey": key}, json=body, **kwargs)


def test_every_endpoint_spools_its_events(s: Stack, p: Project) -> None:
    key = _keys(p).client
    for path, body in VALID.items():
        r = _post(s, path, body, key)
        assert r.status_code == 200, (path, r.text)
        assert r.json() == {"success": True} and r.headers["x-request-id"]
    bulk: list[dict[str, Any]] = [
        {"type": "user", **USER, "context": {"active": True}},
        {"type": "company", "companyId": "c1", "userId": "u1"},
        {"type": "feature-flag-event", "action": "check-config", "key": "f", "evalResult": {"key": "v1", "payload": 1}},
        {"type": "event", "event": "clicked", "userId": "u1", "companyId": "c1"},
        {"type": "feedback", "featureId": "feat_1", "userId": "u1", "comment": "meh"},
        {"type": "prompt-event", "action": "shown", "featureId": "feat_1", "promptId": "p1", "userId": "u1"},
    ]
    assert _post(s, "/bulk", bulk, key).json() == {"success": True}

    lines = _spool_lines(s)
    files = list((s.data_dir / "events").iterdir())
    assert [f.name for f in files] == [f"spool-{os.getpid()}.jsonl"]
    header, spooled = lines[0], lines[1:]
    assert set(header) == {"spool", "pid", "createdAt"} and header["pid"] == os.getpid()
    assert [e["type"] for e in spooled] == [*TYPES.values(), "feedback"] + [b["type"] for b in bulk]
    env = p.env_id("development")
    for e in spooled:
        assert set(e) == {"id", "type", "environment", "project", "keyKind", "receivedAt", "dedupId", "event"}
        assert e["environment"] == env and e["keyKind"] == "client" and e["dedupId"] is None
        assert e["project"] and e["receivedAt"].endswith("Z") and len(e["id"]) == 32
    assert len({e["id"] for e in spooled}) == len(spooled)
    assert spooled[0]["event"] == VALID["/features/events"]
    assert spooled[1]["event"] == {
        "userId": "1234567890",  # ids are strings
        "attributes": {"name": "Rasmus", "some_number": 12},
        "timestamp": "2024-01-01T10:00:00Z",
    }
    assert spooled[2]["event"] == {
        "companyId": "101112231415",
        "attributes": {"plan": "enterprise"},
        "userId": "1234567890",
    }
    assert spooled[4]["event"] == {
        "key": "flag_key",
        "userId": "1234567890",
        "companyId": "1011",
        "score": 4,
        "comment": "Nice",
    }
    assert spooled[5]["event"] == {"userId": "u1", "attributes": {"plan": "pro"}, "context": {"active": True}}
    assert spooled[7]["event"]["evalResult"] == {"key": "v1", "payload": 1}


def test_keys(s: Stack, p: Project) -> None:
    keys = _keys(p)
    body = VALID["/event"]
    assert_error(s.edge.post("/event", json=body), 401, "unauthorized")
    assert_error(_post(s, "/event", body, "client-nope"), 403, "forbidden")
    assert_error(_post(s, "/event", body, keys.server), 403, "forbidden")  # a secret key never in the query
    assert _post(s, "/event", body, keys.client).status_code == 200
    assert _post(s, "/event", body, keys.mobile).status_code == 200
    for key in (keys.client, keys.server):
        r = s.edge.post("/event", json=body, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
    assert [e["keyKind"] for e in _spooled(s)] == ["client", "mobile", "client", "server"]


BAD: list[tuple[str, Any, str]] = [
    ("/user", {}, "userId"),
    ("/user", {"userId": ""}, "userId"),
    ("/user", {"userId": True}, "userId"),
    ("/user", {"userId": {"id": 1}}, "userId"),
    ("/user", {"userId": "u" * 257}, "userId"),
    ("/user", {"userId": "u", "attributes": ["a"]}, "attributes"),
    ("/user", {"userId": "u", "attributes": {str(i): i for i in range(501)}}, "attributes"),
    ("/user", {"userId": "u", "attributes": {"big": "x" * 70_000}}, "attributes"),
    ("/user", {"userId": "u", "timestamp": "yesterday"}, "timestamp"),
    ("/user", {"userId": "u", "client_dedup_id": "d" * 129}, "client_dedup_id"),
    ("/user", [USER], "body"),
    ("/company", {"userId": "u"}, "companyId"),
    ("/company", {"companyId": "c", "userId": 1.5}, "userId"),
    ("/event", {"userId": "u"}, "event"),
    ("/event", {"event": "x"}, "userId"),
    ("/event", {"event": "x" * 257, "userId": "u"}, "event"),
    ("/event", {"event": 5, "userId": "u"}, "event"),
    ("/features/events", {"key": "f"}, "action"),
    ("/features/events", {"action": "check"}, "key"),
    ("/features/events", {"action": "che ck", "key": "f"}, "action"),
    ("/features/events", {"action": "check", "key": "f", "evalResult": "yes"}, "evalResult"),
    ("/features/events", {"action": "check", "key": "f", "evalRuleResults": [1]}, "evalRuleResults"),
    ("/features/events", {"action": "check", "key": "f", "evalMissingFields": "f1"}, "evalMissingFields"),
    ("/features/events", {"action": "check", "key": "f", "targetingVersion": -1}, "targetingVersion"),
    ("/features/events", {"action": "check", "key": "f", "evalContext": "u"}, "evalContext"),
    ("/feedback", {"key": "f", "userId": "u"}, "score"),
    ("/feedback", {"key": "f", "userId": "u", "comment": "   "}, "score"),
    ("/feedback", {"key": "f", "userId": "u", "score": 0}, "score"),
    ("/feedback", {"key": "f", "userId": "u", "score": 6}, "score"),
    ("/feedback", {"key": "f", "userId": "u", "score": 0.99}, "score"),
    ("/feedback", {"key": "f", "userId": "u", "score": 5.01}, "score"),
    ("/feedback", {"key": "f", "userId": "u", "score": "4"}, "score"),
    ("/feedback", {"key": "f", "userId": "u", "score": True}, "score"),
    ("/feedback", {"key": "f", "userId": "u", "comment": 5}, "comment"),
    ("/feedback", {"key": "f", "userId": "u", "comment": "c" * 10_001}, "comment"),
    ("/feedback", {"userId": "u", "score": 3}, "key"),
    ("/feedback", {"key": "f", "score": 3}, "userId"),
    ("/bulk", {"type": "user", "userId": "u"}, "body"),
    ("/bulk", [{"type": "nope"}], "[0].type"),
    ("/bulk", [{"userId": "u"}], "[0].type"),
    ("/bulk", ["user"], "[0]"),
    ("/bulk", [{"type": "user", "userId": "u"}, {"type": "event", "userId": "u"}], "[1].event"),
    ("/bulk", [{"type": "feedback", "key": "f", "userId": "u", "score": 9}], "[0].score"),
    (
        "/bulk",
        [{"type": "prompt-event", "action": "clicked", "featureId": "f", "promptId": "p", "userId": "u"}],
        "[0].action",
    ),
    ("/bulk", [{"type": "user", "userId": "u"}] * 1001, "body"),
]


def test_validation_names_the_field_and_writes_nothing(s: Stack, p: Project) -> None:
    key = _keys(p).client
    for path, body, field in BAD:
        r = _post(s, path, body, key)
        err = assert_error(r, 400, "validation_failed")["error"]
        assert [d["field"] for d in err["details"]] == [field], (path, body if len(str(body)) < 200 else "...", err)
    for raw in (b"", b"{", b"nul", b"\xff"):
        r = s.edge.post("/user", params={"publishableKey": key}, content=raw)
        assert [d["field"] for d in assert_error(r, 400, "validation_failed")["error"]["details"]] == ["body"]
    deep = b"[" * 600 + b"]" * 600
    assert_error(s.edge.post("/bulk", params={"publishableKey": key}, content=deep), 400, "validation_failed")
    nested: Any = {}
    for _ in range(300):
        nested = {"a": nested}
    assert_error(_post(s, "/user", {"userId": "u", "attributes": nested}, key), 400, "validation_failed")
    assert _spooled(s) == []


def test_feedback_needs_score_or_comment(s: Stack, p: Project) -> None:
    key = _keys(p).client
    for body in (
        {"key": "f", "userId": "u", "score": 5},
        {"key": "f", "userId": "u", "score": 4.5},  # the Reflag API's score is a Number from 1 to 5
        {"key": "f", "userId": "u", "comment": "works"},
        {"featureId": "feat", "userId": "u", "score": 1.0, "comment": ""},  # an empty comment is no comment
        {"key": "f", "userId": "u", "score": 2, "question": "How?", "promptId": "p", "source": "widget"},
    ):
        assert _post(s, "/feedback", body, key).status_code == 200, body
    assert [e["event"] for e in _spooled(s)] == [
        {"key": "f", "userId": "u", "score": 5},
        {"key": "f", "userId": "u", "score": 4.5},
        {"key": "f", "userId": "u", "comment": "works"},
        {"featureId": "feat", "userId": "u", "score": 1},
        {"key": "f", "userId": "u", "score": 2, "question": "How?", "promptId": "p", "source": "widget"},
    ]


def test_body_size_limit(s: Stack, p: Project) -> None:
    key = _keys(p).client
    big = {"userId": "u", "attributes": {"x": "y" * (1 << 20)}}
    assert_error(_post(s, "/user", big, key), 413, "payload_too_large")
    assert _spooled(s) == []


def test_dedup_ids(s: Stack, p: Project) -> None:
    keys = _keys(p)
    body = {**USER, "client_dedup_id": "req-1"}
    _post(s, "/user", body, keys.client)
    _post(s, "/user", body, keys.client)  # a retry
    _post(s, "/user", USER, keys.client, headers={"Idempotency-Key": "req-1"})
    _post(s, "/user", USER, keys.client)
    _post(s, "/user", USER, keys.client)
    p.environment("staging", "staging")
    s.sync()
    _post(s, "/user", body, _keys(p, "staging").client)  # the same dedup id in another environment
    bulk = [{"type": "user", "userId": "a"}, {"type": "user", "userId": "b", "client_dedup_id": "own"}]
    _post(s, "/bulk", bulk, keys.client, headers={"Idempotency-Key": "batch-7"})
    _post(s, "/bulk", bulk, keys.client, headers={"Idempotency-Key": "batch-7"})
    ids = [e["id"] for e in _spooled(s)]
    assert ids[0] == ids[1] == ids[2] and ids[0].startswith("d")
    assert len({ids[0], ids[3], ids[4], ids[5]}) == 4
    assert ids[6:8] == ids[8:10] and ids[6] != ids[7]
    assert [e["dedupId"] for e in _spooled(s)[6:8]] == ["batch-7:0", "own"]
    assert_error(_post(s, "/user", USER, keys.client, headers={"Idempotency-Key": "k" * 129}), 400, "validation_failed")


def test_one_fsync_per_request(s: Stack, p: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _keys(p).client
    assert _post(s, "/user", USER, key).status_code == 200  # creates the file (header, directory)
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    assert _post(s, "/bulk", [{"type": "user", "userId": str(i)} for i in range(50)], key).status_code == 200
    assert len(calls) == 1


def test_spool_failure_is_503_not_an_acknowledgement(s: Stack, p: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Spool, lines: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Spool, "append", full)
    r = _post(s, "/user", USER, _keys(p).client)
    assert_error(r, 503, "unavailable")
    assert r.headers["retry-after"] == "5"


def test_spool_rotates(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events", max_bytes=300)
    for i in range(12):
        spool.append([orjson.dumps({"id": f"e{i}", "pad": "x" * 60}) + b"\n"])
    names = sorted(f.name for f in (tmp_path / "events").iterdir())
    rotated = [n for n in names if n.endswith(ROTATED_SUFFIX)]
    assert len(rotated) >= 2 and all(n.startswith(f"spool-{os.getpid()}") for n in names)
    spool.append([orjson.dumps({"id": "e12"}) + b"\n"])  # the next write starts a fresh active file
    names = sorted(f.name for f in (tmp_path / "events").iterdir())
    assert f"spool-{os.getpid()}.jsonl" in names
    seen, headers = [], set()
    for name in sorted(names, key=lambda n: (n.endswith(".jsonl") and not n.endswith(ROTATED_SUFFIX), n)):
        lines = [orjson.loads(x) for x in (tmp_path / "events" / name).read_bytes().splitlines()]
        headers.add(lines[0]["spool"])
        seen += [x["id"] for x in lines[1:]]
    assert seen == [f"e{i}" for i in range(13)] and len(headers) == len(names)
    spool.close()


def test_events_reach_the_control_plane(s: Stack, p: Project) -> None:
    key = _keys(p).client
    _post(s, "/event", VALID["/event"], key)
    _post(s, "/feedback", VALID["/feedback"], key)
    assert consume_spool(s.data_dir, s.store) == 2
    rows = s.store.all("SELECT type, environment_id, user_id, name, payload FROM events ORDER BY received_at, type")
    assert [(r["type"], r["user_id"], r["name"]) for r in rows] == [
        ("event", "1234567890", "Sent message"),
        ("feedback", "1234567890", "flag_key"),
    ]
    assert {r["environment_id"] for r in rows} == {p.env_id("development")}
    assert orjson.loads(rows[1]["payload"])["score"] == 4


# --- intake cannot fill the disk --------------------------------------------------------------


def _intake(s: Stack) -> EventIntake:
    """The edge's event intake (it registered its metrics with the service)."""
    source = s.edge_app.metric_sources[0]
    intake = getattr(source, "__self__", None)
    assert isinstance(intake, EventIntake)
    return intake


def _refused(s: Stack) -> dict[str, int]:
    text = s.edge.get("/metrics").text
    return {m[1]: int(m[2]) for m in re.finditer(r'flagedge_intake_refused_total\{reason="(\w+)"\} (\d+)', text)}


def test_spool_budget_refuses_what_does_not_fit(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    spool = Spool(directory, budget=SpoolBudget(max_bytes=1000, min_free_bytes=0))
    spool.append([b"x" * 500 + b"\n"])
    before = spool.path.read_bytes()
    with pytest.raises(SpoolRefused) as err:
        spool.append([b"y" * 500 + b"\n"])  # header + 501 + 501 > 1000
    assert err.value.reason == SPOOL_FULL and spool.path.read_bytes() == before  # nothing written
    # Every worker's files count, consumed or not, rotated or not; other files do not.
    (directory / "spool-999-1.rotated.jsonl").write_bytes(b"z" * 450)
    (directory / ".consumer.lock").write_bytes(b"l" * 10_000)
    used, free = spool.budget.usage(directory) if spool.budget else (0, 0)
    assert used == len(before) + 450 and free > 0
    with pytest.raises(SpoolRefused):
        spool.append([b"\n"])
    (directory / "spool-999-1.rotated.jsonl").unlink()  # the consumer stored and removed it
    spool.append([b"w" * 100 + b"\n"])
    spool.close()

    low = Spool(tmp_path / "low", budget=SpoolBudget(max_bytes=0, min_free_bytes=1 << 62))
    with pytest.raises(SpoolRefused) as err:
        low.append([b"x\n"])
    assert err.value.reason == DISK_LOW


def test_rotation_keeps_consumed_bytes_under_the_bound() -> None:
    assert rotate_bytes(4 << 30, 1) == 64 << 20  # the default, for a large bound
    assert rotate_bytes(64 << 20, 4) == 4 << 20  # all active files together: a quarter of the bound
    assert rotate_bytes(1 << 20, 64) == 64 << 10  # never below 64 KiB
    assert rotate_bytes(0, 4) == 64 << 20  # no bound


def test_full_spool_is_503_with_retry_after_and_counted(s: Stack, p: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _keys(p).client
    assert _post(s, "/user", USER, key).status_code == 200
    monkeypatch.setattr(SpoolBudget, "usage", lambda self, directory: (self.max_bytes, 1 << 40))
    r = _post(s, "/bulk", [{"type": "user", "userId": "u"}], key)
    assert_error(r, 503, "unavailable")
    assert r.headers["retry-after"] == "5"
    monkeypatch.setattr(SpoolBudget, "usage", lambda self, directory: (0, self.min_free_bytes))
    r = _post(s, "/user", USER, key)
    assert_error(r, 503, "unavailable")
    assert r.headers["retry-after"] == "30"
    assert len(_spooled(s)) == 1
    refused = _refused(s)
    assert refused == {**dict.fromkeys(REFUSALS, 0), SPOOL_FULL: 1, DISK_LOW: 1}
    assert "flagedge_intake_events_total 1" in s.edge.get("/metrics").text


def test_rate_limits_per_address_and_per_key(s: Stack, p: Project) -> None:
    intake = _intake(s)
    # Slow refills: nothing comes back while the test runs.
    intake.per_address = RateLimiter(0.01, burst=3, name="client address")
    intake.per_key = RateLimiter(0.01, burst=5, name="SDK key")
    keys = _keys(p)
    statuses = [_post(s, "/event", VALID["/event"], keys.client).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    r = _post(s, "/event", VALID["/event"], keys.mobile)  # the address's limit, whatever the key
    assert_error(r, 429, "rate_limited")
    assert r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) >= 1
    assert "client address" in r.json()["error"]["message"]
    # Another client with the same key gets the key's remaining burst (two), then the key's limit.
    intake.per_address = RateLimiter(0.01, burst=100, name="client address")
    statuses = [_post(s, "/event", VALID["/event"], keys.client).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert "SDK key" in _post(s, "/event", VALID["/event"], keys.client).json()["error"]["message"]
    assert _post(s, "/event", VALID["/event"], keys.mobile).status_code == 200  # another key
    refused = _refused(s)
    assert (refused[RATE_LIMITED_ADDRESS], refused[RATE_LIMITED_KEY]) == (3, 2)
    assert len(_spooled(s)) == 6


def test_a_large_body_costs_more_tokens(s: Stack, p: Project) -> None:
    intake = _intake(s)
    intake.per_address = RateLimiter(0.01, burst=20, name="client address")
    key = _keys(p).client
    big = [{"type": "user", "userId": str(i), "attributes": {"x": "y" * 60_000}} for i in range(8)]  # ~480 KB
    # Each costs 1 + 7 tokens of 20 (small events would pass 20 times); the third goes into debt.
    assert [_post(s, "/bulk", big, key).status_code for _ in range(4)] == [200, 200, 200, 429]
