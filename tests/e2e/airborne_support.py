"""Airborne over real processes: an application built through the control plane's HTTP API, devices
asking the edge for their release, and an independent model of the README's resolution rule.

The model (:class:`Model`) is written from the README ("Which release a device gets"), not from
``server/release.py``: it keeps the releases the test created, and for a device walks the matching
releases most specific first, an experiment ahead of the live release of its own specificity,
taking a live release always and an experiment when the device's bucket is inside its traffic.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

import evaluator

_names = itertools.count()
IDENTIFIER_DIMENSIONS = ("toss", "device_id", "deviceId", "user_id", "userId")
FILE_BYTES = b"console.log('bundle');\n"
FILE_SHA256 = hashlib.sha256(FILE_BYTES).hexdigest()


def ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()


@dataclass
class Owner:
    admin: httpx.Client
    token: str

    def headers(self, organisation: str, application: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}", "x-organisation": organisation}
        if application is not None:
            h["x-application"] = application
        return h


def sign_up(admin: httpx.Client) -> Owner:
    name = f"owner{next(_names)}"
    body = ok(
        admin.post(
            "/users/create",
            json={
                "name": name,
                "password": "correct-horse",
                "first_name": "F",
                "last_name": "L",
                "email": f"{name}@x.io",
            },
        )
    )
    return Owner(admin, body["user_token"]["access_token"])


@dataclass
class Release:
    id: str
    name: str
    dims: dict[str, str]
    weight: int
    seq: int
    status: str = "CREATED"
    traffic: int = 0
    concluded: int = -1


@dataclass
class Model:
    """The README's rule over the releases this test made."""

    releases: list[Release] = field(default_factory=list)

    def live(self) -> list[Release]:
        newest: dict[tuple[tuple[str, str], ...], Release] = {}
        for r in self.releases:
            if r.status == "LIVE":
                key = tuple(sorted(r.dims.items()))
                if key not in newest or newest[key].concluded < r.concluded:
                    newest[key] = r
        return list(newest.values())

    def resolve(self, dims: dict[str, str], identifier: str | None) -> str | None:
        steps = [(-r.weight, 1, -r.concluded, r) for r in self.live()]
        steps += [(-r.weight, 0, -r.seq, r) for r in self.releases if r.status == "OPEN" and r.traffic > 0]
        for *_, r in sorted(steps, key=lambda t: t[:3]):
            if any(dims.get(k) != v for k, v in r.dims.items()):
                continue
            if r.status == "LIVE" or r.traffic >= 100:
                return r.name
            if identifier is not None:
                b = (evaluator.murmur3_32(f"{r.id}.{identifier}") * 10_000) >> 32
                if b < r.traffic * 100:
                    return r.name
        return None


@dataclass
class Device:
    id: str
    dims: dict[str, str]
    form: int  # how it identifies itself: see request()

    def request(self) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, query) the way one kind of client sends them.

        0: an Airborne SDK (``x-dimension: k=v;k=v``) with ``?toss=<id>`` in its release config URL;
        1: a client built from the document: ``x-dimensions`` JSON with a ``device_id`` dimension;
        2: ``x-dimensions`` as ``k=v`` pairs with a ``userId`` dimension;
        3: ``x-dimensions`` JSON with a ``toss`` dimension.
        """
        if self.form == 0:
            pairs = ";".join(f"{k}={quote(v)}" for k, v in sorted(self.dims.items()))
            return {"x-dimension": pairs}, {"toss": self.id}
        if self.form == 1:
            return {"x-dimensions": httpx_json({**self.dims, "device_id": self.id})}, {}
        if self.form == 2:
            pairs = ";".join(f"{k}={quote(v)}" for k, v in sorted({**self.dims, "userId": self.id}.items()))
            return {"x-dimensions": pairs}, {}
        return {"x-dimensions": httpx_json({**self.dims, "toss": self.id})}, {}


def httpx_json(doc: dict[str, str]) -> str:
    return orjson.dumps(doc).decode()


def fleet(n: int, **choices: list[str]) -> list[Device]:
    """``n`` devices; dimension ``k`` of device ``i`` cycles through ``choices[k]`` (mixed radix)."""
    out = []
    for i in range(n):
        dims: dict[str, str] = {}
        rest = i
        for name, values in choices.items():
            dims[name] = values[rest % len(values)]
            rest //= len(values)
        out.append(Device(f"dev-{i:05d}", dims, i % 4))
    return out


class AirborneApp:
    """One application: its dimensions, one package, releases named by a config property."""

    def __init__(self, owner: Owner, edge: httpx.Client, organisation: str, application: str) -> None:
        self.admin, self.edge, self.owner = owner.admin, edge, owner
        self.organisation, self.application = organisation, application
        self.h = owner.headers(organisation, application)
        self.model = Model()
        self.positions: dict[str, int] = {}
        self.seq = itertools.count()
        ok(
            self.admin.post(
                "/organisations/applications/create",
                json={"application": application},
                headers=owner.headers(organisation),
            )
        )

    def files(self, base_url: str = "https://cdn.example.com") -> None:
        for path in ("index.jsa", "main.js"):
            extra = {"size": len(FILE_BYTES), "checksum": FILE_SHA256}
            ok(
                self.admin.post(
                    "/file", json={"file_path": path, "url": f"{base_url}/{path}", "tag": "v1", **extra}, headers=self.h
                )
            )
        ok(
            self.admin.post(
                "/packages",
                json={"index": "index.jsa@tag:v1", "tag": "v1", "files": ["main.js@tag:v1"]},
                headers=self.h,
            )
        )

    def dimension(self, name: str) -> None:
        body = ok(
            self.admin.post(
                "/organisations/applications/dimension/create",
                json={"dimension": name, "description": name, "schema": {"type": "string"}},
                headers=self.h,
            )
        )
        self.positions[name] = int(body["position"])

    def release(self, name: str, dims: dict[str, str] | None = None) -> Release:
        payload: dict[str, Any] = {"config": {"properties": {"which": name}}, "dimensions": dims or {}}
        body = ok(self.admin.post("/releases", json=payload, headers=self.h))
        weight = sum(2 ** self.positions[k] for k in dims or {})
        r = Release(body["id"], name, dict(dims or {}), weight, next(self.seq))
        if body["experiment"]["status"] == "CONCLUDED":
            r.status, r.traffic, r.concluded = "LIVE", 100, next(self.seq)
        else:
            r.status = "OPEN"
        self.model.releases.append(r)
        return r

    def ramp(self, r: Release, traffic: int) -> httpx.Response:
        resp = self.admin.post(f"/releases/{r.id}/ramp", json={"traffic_percentage": traffic}, headers=self.h)
        if resp.status_code == 200:
            r.traffic = traffic
        return resp

    def conclude(self, r: Release, variant: str) -> None:
        ok(self.admin.post(f"/releases/{r.id}/conclude", json={"chosen_variant": variant}, headers=self.h))
        r.status = "LIVE" if variant == "experimental" else "DONE"
        r.concluded = next(self.seq)

    def discard(self, r: Release) -> None:
        ok(self.admin.post(f"/releases/{r.id}/discard", json={}, headers=self.h))
        r.status = "DISCARDED"

    def live(self, name: str, dims: dict[str, str] | None = None) -> Release:
        r = self.release(name, dims)
        if r.status != "LIVE":
            self.conclude(r, "experimental")
        return r

    def version(self) -> int:
        """The snapshot version the control plane published last (the edge waits for it)."""
        return int(ok(self.admin.get("/ready"))["publish"]["version"])

    def served(self, devices: list[Device]) -> dict[str, str | None]:
        """Each device's release name as the edge serves it now (None: 404 no release)."""
        wait = str(self.version())
        out: dict[str, str | None] = {}
        path = f"/release/{quote(self.organisation, safe='')}/{quote(self.application, safe='')}"
        for d in devices:
            headers, query = d.request()
            r = self.edge.get(path, headers=headers, params={**query, "waitForVersion": wait})
            if r.status_code == 404:
                out[d.id] = None
                continue
            assert r.status_code == 200, r.text
            out[d.id] = r.json()["config"]["properties"]["which"]
        return out

    def expected(self, devices: list[Device]) -> dict[str, str | None]:
        return {d.id: self.model.resolve(d.dims, identifier_of(d)) for d in devices}


def identifier_of(d: Device) -> str:
    """Every form of :meth:`Device.request` carries the device id, in one place or another."""
    return d.id
