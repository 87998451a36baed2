"""Helpers for the Airborne control-plane tests: an application with its headers, and a small
reference evaluator of the JSON Logic subset cohort rules use (cross-checked against the Rust
evaluator whenever that build implements JSON Logic)."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

import evaluator
from control_plane import releases_snapshot as rs
from control_plane.store import Store
from tests.control_plane.conftest import Api, User


@dataclass
class App:
    api: Api
    owner: User
    organisation: str
    application: str

    @property
    def h(self) -> dict[str, str]:
        return self.owner.org(self.organisation, self.application)

    def headers(self, user: User) -> dict[str, str]:
        return user.org(self.organisation, self.application)

    def store(self) -> Store:
        store: Store = self.api.client.app.state.services.store  # type: ignore[attr-defined]
        return store

    def project_id(self) -> str:
        with self.store().read() as db:
            row = db.execute(
                "SELECT p.id FROM projects p JOIN organisations o ON o.id = p.organisation_id"
                " WHERE o.name = ? AND p.key = ?",
                (self.organisation, self.application),
            ).fetchone()
        return str(row["id"])

    def record_touches(self) -> list[set[str]]:
        """From now on, the project ids of every publication (one entry per touching write)."""
        touched: list[set[str]] = []
        services = self.api.client.app.state.services  # type: ignore[attr-defined]
        original = services.publish_projects

        def publish(ids: set[str], documents: dict[str, dict[str, Any]]) -> None:
            touched.append(set(ids))
            original(ids, documents)

        services.publish_projects = publish
        return touched

    def snapshot(self) -> dict[str, Any]:
        with self.store().read() as db:
            return rs.release_snapshot(db, self.project_id())

    def audit(self, action: str) -> list[sqlite3.Row]:
        with self.store().read() as db:
            return list(db.execute("SELECT * FROM audit_log WHERE action = ? ORDER BY id", (action,)))

    def file(self, path: str, tag: str = "latest", url: str | None = None, **extra: Any) -> dict[str, Any]:
        """A file version; with the size and checksum of made-up content unless ``extra`` says
        otherwise (``size=None`` leaves them out: the file stays pending)."""
        if "size" not in extra:
            content = f"{path}@{tag}".encode()
            extra = {"size": len(content), "checksum": hashlib.sha256(content).hexdigest(), **extra}
        extra = {k: v for k, v in extra.items() if v is not None}
        r = self.api.client.post(
            "/file",
            json={"file_path": path, "url": url or f"https://cdn.example.com/{path}", "tag": tag, **extra},
            headers=self.h,
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def package(self, index: str, files: list[str], tag: str = "latest") -> dict[str, Any]:
        r = self.api.client.post("/packages", json={"index": index, "tag": tag, "files": files}, headers=self.h)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def dimension(self, name: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"dimension": name, "description": f"{name} dimension", **extra}
        if extra.get("dimension_type") != "cohort":
            payload["schema"] = schema or {"type": "string"}
        r = self.api.client.post("/organisations/applications/dimension/create", json=payload, headers=self.h)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def make_app(api: Api, organisation: str = "acme", application: str = "shop") -> App:
    owner = api.signup()
    api.organisation(owner, organisation)
    api.application(owner, organisation, application)
    return App(api, owner, organisation, application)


# ---------------------------------------------------------------------------------------------
# An independent SemVer reading, the oracle for jp_ver_*: one leading v/V is dropped, strict
# SemVer 2.0, or the short forms MAJOR and MAJOR.MINOR. Precedence ignores build metadata.

Pre = tuple[tuple[int, int | str], ...]
Version = tuple[int, int, int, Pre]
_NUMERIC = re.compile(r"^(0|[1-9][0-9]*)$")
_IDENT = re.compile(r"^[0-9A-Za-z-]+$")


def _num(s: str) -> int | None:
    return int(s) if _NUMERIC.match(s) and int(s) < 2**64 else None


def _strict(s: str) -> Version | None:
    rest, plus, build = s.partition("+")
    if plus and not all(_IDENT.match(b) for b in build.split(".")):
        return None
    core, dash, pre = rest.partition("-")
    parts = core.split(".")
    if len(parts) != 3:
        return None
    nums = [_num(p) for p in parts]
    if any(n is None for n in nums):
        return None
    ids: list[tuple[int, int | str]] = []
    if dash:
        for ident in pre.split("."):
            if not _IDENT.match(ident):
                return None
            if ident.isdigit():
                if len(ident) > 1 and ident.startswith("0"):
                    return None
                ids.append((0, int(ident)))
            else:
                ids.append((1, ident))
    major, minor, patch = (int(n or 0) for n in nums)
    return (major, minor, patch, tuple(ids))


def parse_version(text: str) -> Version | None:
    """The version ``text`` denotes for ``jp_ver_*``, or None when those operators reject it."""
    s = text[1:] if text[:1] in ("v", "V") else text
    strict = _strict(s)
    if strict is not None:
        return strict
    parts = s.split(".")
    if len(parts) > 2:
        return None
    nums = [_num(p) for p in parts]
    if any(n is None for n in nums):
        return None
    return (int(nums[0] or 0), int(nums[1] or 0) if len(nums) > 1 else 0, 0, ())


def compare_versions(a: Version, b: Version) -> int:
    """SemVer precedence: -1, 0 or 1."""
    if a[:3] != b[:3]:
        return -1 if a[:3] < b[:3] else 1
    pa, pb = a[3], b[3]
    if not pa or not pb:
        return (not pa) - (not pb)
    for x, y in zip(pa, pb, strict=False):
        if x != y:
            if x[0] != y[0]:
                return -1 if x[0] < y[0] else 1
            return -1 if x[1] < y[1] else 1  # type: ignore[operator]
    return (len(pa) > len(pb)) - (len(pa) < len(pb))


# ---------------------------------------------------------------------------------------------
# Reference semantics of the cohort rule subset (json-logic-js plus the Airborne operators).


def _js_string(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _truthy(v: Any) -> bool:
    if isinstance(v, list):
        return bool(v)
    return v not in (None, False, 0, "") and v == v


_CMP = {
    "gt": lambda c: c > 0,
    "ge": lambda c: c >= 0,
    "lt": lambda c: c < 0,
    "le": lambda c: c <= 0,
    "eq": lambda c: c == 0,
}


def reference_apply(rule: Any, data: dict[str, Any]) -> Any:
    if isinstance(rule, list):
        return [reference_apply(r, data) for r in rule]
    if not isinstance(rule, dict):
        return rule
    ((op, raw),) = rule.items()
    args = raw if isinstance(raw, list) else [raw]
    if op == "var":
        return data.get(args[0])
    if op == "if":
        for i in range(0, len(args) - 1, 2):
            if _truthy(reference_apply(args[i], data)):
                return reference_apply(args[i + 1], data)
        return reference_apply(args[-1], data) if len(args) % 2 else None
    if op == "and":
        value: Any = None
        for a in args:
            value = reference_apply(a, data)
            if not _truthy(value):
                return value
        return value
    vals = [reference_apply(a, data) for a in args]
    if op == "in":
        return isinstance(vals[1], list) and any(type(x) is type(vals[0]) and x == vals[0] for x in vals[1])
    if op == "!=":
        a, b = vals
        return not (a == b or (a is None and b is None))
    if op.startswith("jp_ver_"):
        va, vb = parse_version(_js_string(vals[0])), parse_version(_js_string(vals[1]))
        return va is not None and vb is not None and _CMP[op[7:]](compare_versions(va, vb))
    if op.startswith("str_"):
        a, b = _js_string(vals[0]), _js_string(vals[1])
        return _CMP[op[4:]]((a > b) - (a < b))
    raise AssertionError(f"operator {op} is not part of the cohort subset")


def apply_rule(rule: Any, data: dict[str, Any]) -> Any:
    """The rule's value for ``data``; when the evaluator implements JSON Logic it must agree."""
    expected = reference_apply(rule, data)
    try:
        actual = evaluator.jsonlogic_apply(rule, data)
    except evaluator.EvaluatorError as e:
        assert str(e) == "not implemented", e
        return expected
    assert actual == expected, (rule, data, actual, expected)
    return actual


def cohort_of(snapshot: dict[str, Any], dimension: str, context: dict[str, Any]) -> Any:
    (entry,) = [d for d in snapshot["dimensions"] if d["name"] == dimension]
    return apply_rule(entry["rule"], context)
