"""The servers under test: ours and the three peers, each started on a free loopback port,
pinned to the server core with one worker or thread, loaded with one dataset, and asked the
same things: which route answers each benchmark row, and what it answers for a context.

Rows (``kind``): ``evaluated`` = every flag for a context given in the query string (ours:
``GET /features/evaluated``; Unleash Edge: ``GET /api/frontend``, the route its frontend SDKs
call, which evaluates per context and lists the enabled toggles); ``bulk`` = every flag for a
context posted as JSON (ours, flagd, go-feature-flag: ``POST /ofrep/v1/evaluate/flags``;
Unleash Edge: ``POST /api/frontend``); ``single`` = one flag (OFREP
``POST /ofrep/v1/evaluate/flags/{key}``; Unleash Edge: ``POST /api/frontend/features/{key}``).
flagd and go-feature-flag have no query-string route, so they are not in ``evaluated`` rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.peers import check, contexts, translate
from bench.peers.check import Outcome
from bench.peers.contexts import Wire
from bench.processes import THIS, Checkout, command, free_port, rss_mb, worker_pids
from bench.stack import EDGE_CPU, running

# The flag the single-flag rows ask for: W2's fourth flag, a nested group (or, and, negation)
# of context tests without rollout or config, present in every W2-shaped set.
SINGLE_FLAG = "flag-0003"
KINDS = ("evaluated", "bulk", "single")
# Offline Edge wants a client (backend) token; the frontend routes take the frontend one.
UNLEASH_CLIENT_TOKEN = "*:development.flagedge-bench-client"
UNLEASH_TOKEN = "*:development.flagedge-bench-frontend"
OFREP_BULK = "/ofrep/v1/evaluate/flags"


@dataclass(frozen=True)
class Route:
    path: str
    wire: Wire
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Served:
    """One running server: its base URL, main process and the credential its routes need."""

    url: str
    pid: int
    key: str = ""

    def rss_mb(self) -> float:
        """Resident memory of the server's processes (main process and workers)."""
        return round(sum(rss_mb(p) for p in [self.pid, *worker_pids(self.pid)]), 1)


def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers, timeout=60)


def wait_all_flags(url: str, count: int, headers: dict[str, str] | None = None, timeout: float = 120) -> None:
    """Wait until the OFREP bulk route at ``url`` answers all ``count`` flags: a peer may report
    healthy before its file source is loaded."""
    deadline = time.monotonic() + timeout
    last = ""
    body = contexts.ofrep_body(contexts.w1_context(0))
    while time.monotonic() < deadline:
        try:
            r = _post(url + OFREP_BULK, body, headers)
            if r.status_code == 200 and len(r.json().get("flags", [])) == count:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered {count} flags: {last}")


def _ok(r: httpx.Response) -> Any:
    if r.status_code >= 400 and r.status_code != 404:
        raise RuntimeError(f"{r.request.method} {r.request.url} answered {r.status_code}: {r.text[:500]}")
    return r.json()


class Server:
    """What every server under test answers; subclasses know one product."""

    name = ""
    version = ""

    @contextmanager
    def start(self, dataset: str, flags: list[dict[str, Any]], work: Path) -> Iterator[Served]:
        raise NotImplementedError
        yield  # pragma: no cover

    def route(self, kind: str, served: Served) -> Route | None:
        raise NotImplementedError

    def bulk(self, served: Served, keys: list[str], context: dict[str, Any]) -> dict[str, Outcome | None]:
        raise NotImplementedError

    def single(self, served: Served, key: str, context: dict[str, Any]) -> Outcome | None:
        raise NotImplementedError


class Ofrep(Server):
    """A server with OFREP routes (auth by Bearer key when it has one)."""

    def headers(self, served: Served) -> dict[str, str]:
        return {"Authorization": f"Bearer {served.key}"} if served.key else {}

    def route(self, kind: str, served: Served) -> Route | None:
        if kind == "bulk":
            return Route(OFREP_BULK, "ofrep", self.headers(served))
        if kind == "single":
            return Route(f"{OFREP_BULK}/{SINGLE_FLAG}", "ofrep", self.headers(served))
        return None

    def bulk(self, served: Served, keys: list[str], context: dict[str, Any]) -> dict[str, Outcome | None]:
        body = _ok(_post(served.url + OFREP_BULK, contexts.ofrep_body(context), self.headers(served)))
        return check.ofrep_bulk(body)

    def single(self, served: Served, key: str, context: dict[str, Any]) -> Outcome | None:
        r = _post(f"{served.url}{OFREP_BULK}/{key}", contexts.ofrep_body(context), self.headers(served))
        item = _ok(r)
        return check.ofrep_outcome(item) if isinstance(item, dict) else None


class Ours(Ofrep):
    """Our edge, from this checkout or (as a before/after baseline in the same run) another one."""

    name = "flagedge"

    def __init__(self, checkout: Checkout = THIS, name: str = "flagedge") -> None:
        self.checkout, self.name = checkout, name

    @contextmanager
    def start(self, dataset: str, flags: list[dict[str, Any]], work: Path) -> Iterator[Served]:
        work.mkdir(parents=True, exist_ok=True)
        with running(dataset, tmp=work, checkout=self.checkout) as stack:
            yield Served(stack.edge_url, stack.edge_pid, stack.client_key)

    def route(self, kind: str, served: Served) -> Route | None:
        if kind == "evaluated":
            return Route(f"/features/evaluated?publishableKey={served.key}", "reflag-query")
        return super().route(kind, served)

    def evaluated(self, served: Served, context: dict[str, Any]) -> dict[str, Outcome | None]:
        """Our ``/features/evaluated`` answer (checked against our own OFREP answer)."""
        url = f"{served.url}/features/evaluated?publishableKey={served.key}&{contexts.reflag_query(context)}"
        return check.reflag_evaluated(_ok(httpx.get(url, timeout=60)))

    def body_bytes(self, kind: str, served: Served, context: dict[str, Any]) -> int:
        """The size of our answer on a row's route (for the ceiling of the same body size)."""
        route = self.route(kind, served)
        assert route is not None
        if route.wire == "reflag-query":
            r = httpx.get(f"{served.url}{route.path}&{contexts.reflag_query(context)}", timeout=60)
        else:
            r = _post(served.url + route.path, contexts.ofrep_body(context), route.headers)
        return len(r.content)


class UnleashEdge(Server):
    name = "unleash-edge"

    def __init__(self, binary: Path, version: str) -> None:
        self.binary, self.version = binary, version

    @contextmanager
    def start(self, dataset: str, flags: list[dict[str, Any]], work: Path) -> Iterator[Served]:
        work.mkdir(parents=True, exist_ok=True)
        bootstrap = work / "unleash-features.json"
        bootstrap.write_text(json.dumps(translate.unleash(flags)))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [str(self.binary), "--port", str(port), "--interface", "127.0.0.1", "offline"]
        cmd += ["--bootstrap-file", str(bootstrap), "--frontend-tokens", UNLEASH_TOKEN]
        cmd += ["--client-tokens", UNLEASH_CLIENT_TOKEN]
        # One tokio worker thread, pinned: the same one core as our single worker.
        env = {"TOKIO_WORKER_THREADS": "1", "RUST_LOG": "warn"}
        health = f"{url}/internal-backstage/health"
        with command(cmd, health, work / "unleash-edge.log", env=env, cpu=EDGE_CPU, timeout=60) as proc:
            yield Served(url, proc.pid, UNLEASH_TOKEN)

    def route(self, kind: str, served: Served) -> Route | None:
        auth = {"Authorization": served.key}
        if kind == "evaluated":
            return Route("/api/frontend", "unleash-query", auth)
        if kind == "bulk":
            return Route("/api/frontend", "unleash-json", auth)
        if kind == "single":
            return Route(f"/api/frontend/features/{SINGLE_FLAG}", "unleash-json", auth)
        return None

    def bulk(self, served: Served, keys: list[str], context: dict[str, Any]) -> dict[str, Outcome | None]:
        body = _ok(
            _post(f"{served.url}/api/frontend", contexts.unleash_context(context), {"Authorization": served.key})
        )
        return check.unleash_bulk(body, keys)

    def single(self, served: Served, key: str, context: dict[str, Any]) -> Outcome | None:
        r = _post(
            f"{served.url}/api/frontend/features/{key}",
            contexts.unleash_context(context),
            {"Authorization": served.key},
        )
        return check.unleash_toggle(r.json()) if r.status_code == 200 else None

    def evaluated(self, served: Served, keys: list[str], context: dict[str, Any]) -> dict[str, Outcome | None]:
        """The query-string route's answer (checked like the JSON one)."""
        url = f"{served.url}/api/frontend?{contexts.unleash_query(context)}"
        return check.unleash_bulk(_ok(httpx.get(url, headers={"Authorization": served.key}, timeout=60)), keys)


class Flagd(Ofrep):
    name = "flagd"

    def __init__(self, binary: Path, version: str) -> None:
        self.binary, self.version = binary, version

    @contextmanager
    def start(self, dataset: str, flags: list[dict[str, Any]], work: Path) -> Iterator[Served]:
        work.mkdir(parents=True, exist_ok=True)
        definitions = work / "flagd-flags.json"
        definitions.write_text(json.dumps(translate.flagd(flags)))
        evaluation, management, ofrep, sync = (free_port() for _ in range(4))
        cmd = [str(self.binary), "start", "--uri", f"file:{definitions}", "--port", str(evaluation)]
        cmd += ["--management-port", str(management), "--ofrep-port", str(ofrep), "--sync-port", str(sync)]
        env = {"GOMAXPROCS": "1"}
        health = f"http://127.0.0.1:{management}/readyz"
        with command(cmd, health, work / "flagd.log", env=env, cpu=EDGE_CPU, timeout=60) as proc:
            url = f"http://127.0.0.1:{ofrep}"
            wait_all_flags(url, len(flags))
            yield Served(url, proc.pid)


class GoFeatureFlag(Ofrep):
    name = "go-feature-flag"

    def __init__(self, binary: Path, version: str) -> None:
        self.binary, self.version = binary, version

    @contextmanager
    def start(self, dataset: str, flags: list[dict[str, Any]], work: Path) -> Iterator[Served]:
        work.mkdir(parents=True, exist_ok=True)
        definitions = work / "goff-flags.json"
        definitions.write_text(json.dumps(translate.gofeatureflag(flags)))
        port = free_port()
        config = {
            "server": {"mode": "http", "host": "127.0.0.1", "port": port},
            "retrievers": [{"kind": "file", "path": str(definitions)}],
            "fileFormat": "json",
            "pollingInterval": 3_600_000,
            "logLevel": "error",
            "hideBanner": True,
        }
        config_path = work / "goff-relay-proxy.json"
        config_path.write_text(json.dumps(config))
        url = f"http://127.0.0.1:{port}"
        cmd = [str(self.binary), "--config", str(config_path)]
        with command(
            cmd, f"{url}/health", work / "relayproxy.log", env={"GOMAXPROCS": "1"}, cpu=EDGE_CPU, timeout=60
        ) as p:
            wait_all_flags(url, len(flags))
            yield Served(url, p.pid)
