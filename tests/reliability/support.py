"""What the reliability tests share: real processes, admin helpers, and :class:`Traffic`, the
background load that records every answer an edge gives while a fault is injected.

Every test here runs its fault *during traffic*: a few threads keep sending
``/features/evaluated`` (a unique context per request) and record each request's start and end
time, its status or exception and what it served (``flagStateVersion`` and the enabled flags),
so a test can say exactly which requests failed, when, and what every answer contained.
"""

from __future__ import annotations

import glob
import http.client
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson

# Re-exported (``as``): the reliability tests import every helper from here.
from bench.processes import Background as Background
from bench.processes import create_flags as create_flags
from bench.processes import on_rule as on_rule
from bench.processes import process
from bench.processes import set_flag as set_flag


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- processes ------------------------------------------------------------------------------------


def control_plane(data: Path, port: int, *extra: str, env: dict[str, str] | None = None, log: str = "cp.log") -> Any:
    """``python -m control_plane serve`` on ``data``; a context manager yielding the Popen."""
    return process(
        ["control_plane", "serve", "--data-dir", str(data), "--port", str(port), *extra],
        f"http://127.0.0.1:{port}/health",
        data.parent / f"{data.name}-{log}",
        env=env,
        timeout=60,
    )


def edge(data: Path, port: int, *extra: str, env: dict[str, str] | None = None, log: str = "edge.log") -> Any:
    """``python -m server serve`` on ``data``; a context manager yielding the Popen."""
    return process(
        ["server", "serve", "--data-dir", str(data), "--port", str(port), *extra],
        f"http://127.0.0.1:{port}/health",
        data.parent / f"{data.name}-{log}",
        env=env,
        timeout=60,
    )


def children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


# -- admin API ------------------------------------------------------------------------------------


def login(admin: httpx.Client) -> dict[str, str]:
    """Headers of the ``ops`` owner created by :func:`bench.processes.bootstrap_project`."""
    r = admin.post("/users/login", json={"name": "ops", "password": "correct-horse"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['user_token']['access_token']}", "x-organisation": "acme"}


# -- traffic --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One request of the background traffic."""

    thread: int
    started: float  # time.monotonic()
    ended: float
    status: int | None  # None: the request raised
    error: str | None  # the exception (no HTTP answer), or the body of an answer other than 200
    version: int | None  # flagStateVersion of a 200
    enabled: frozenset[str]  # flags evaluated true in a 200
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def __str__(self) -> str:
        what = f"{self.status or ''} v{self.version} {self.error or ''}".strip()
        return f"[t{self.thread} {self.started:.3f}-{self.ended:.3f} {what}]"


class Traffic:
    """Threads sending ``/features/evaluated`` to an edge until stopped, recording every answer.

    ``fresh_connections`` opens one TCP connection per request (and closes it): a request can
    then only fail if the process that accepted *its* connection dies while serving it, which
    is what the worker-kill test needs to tell "in flight on the killed worker" from "failed on
    a live worker". ``pause`` is the think time between a thread's requests.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        threads: int = 3,
        fresh_connections: bool = True,
        pause: float = 0.002,
        timeout: float = 10.0,
        name: str = "edge",
    ) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.key, self.threads, self.fresh, self.pause, self.timeout = key, threads, fresh_connections, pause, timeout
        self.name = name
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _path(self, thread: int, n: int) -> str:
        query = {
            "publishableKey": self.key,
            "context.user.id": f"{self.name}-{thread}-{n}",
            "context.company.plan": ("free", "pro", "enterprise")[n % 3],
        }
        return "/features/evaluated?" + urlencode(query)

    def _run(self, thread: int) -> None:
        conn: http.client.HTTPConnection | None = None
        n = 0
        while not self._stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                headers = {"Connection": "close"} if self.fresh else {}
                conn.request("GET", self._path(thread, n), headers=headers)
                r = conn.getresponse()
                body = r.read()
                answer = self._answer(thread, started, r.status, body, r.getheader("retry-after"))
                if self.fresh or r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                answer = Answer(thread, started, time.monotonic(), None, f"{type(e).__name__}: {e}", None, frozenset())
                if conn is not None:
                    conn.close()
                    conn = None
            with self._lock:
                self.answers.append(answer)
            if self.pause:
                self._stop.wait(self.pause)
        if conn is not None:
            conn.close()

    @staticmethod
    def _answer(thread: int, started: float, status: int, body: bytes, retry_after: str | None) -> Answer:
        version = None
        enabled: frozenset[str] = frozenset()
        if status == 200:
            data = orjson.loads(body)
            version = int(data["flagStateVersion"])
            enabled = frozenset(k for k, f in data["features"].items() if f.get("isEnabled"))
        error = None if status == 200 else body[:300].decode(errors="replace")
        return Answer(thread, started, time.monotonic(), status, error, version, enabled, retry_after)

    def start(self) -> Traffic:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), name=f"traffic-{self.name}-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        for t in self._workers:
            t.join(self.timeout + 5)
        return self.snapshot()

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return sorted(self.answers, key=lambda a: a.started)

    def between(self, start: float, end: float = float("inf")) -> list[Answer]:
        """Requests that started in ``[start, end)``."""
        return [a for a in self.snapshot() if start <= a.started < end]

    def wait_for(self, predicate: Callable[[Answer], bool], what: str, timeout: float = 30.0) -> Answer:
        """The first answer, started from now on, that satisfies ``predicate``."""
        since = time.monotonic()
        found: list[Answer] = []

        def seen() -> bool:
            found[:] = [a for a in self.between(since) if predicate(a)]
            return bool(found)

        wait_until(seen, f"{self.name}: {what}", timeout)
        return found[0]

    def count_since(self, start: float) -> int:
        return len(self.between(start))


@contextmanager
def traffic(*streams: Traffic) -> Iterator[tuple[Traffic, ...]]:
    for s in streams:
        s.start()
    try:
        yield streams
    finally:
        for s in streams:
            s.stop()


def failures(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if not a.ok]


def assert_no_failures(answers: list[Answer], what: str) -> None:
    bad = failures(answers)
    assert answers, f"{what}: no requests were made"
    assert not bad, f"{what}: {len(bad)} of {len(answers)} requests failed, e.g. {[str(a) for a in bad[:5]]}"


def assert_versions_never_go_back(answers: list[Answer], what: str) -> None:
    """A request that starts after another one ended never sees an older snapshot version."""
    done = sorted((a for a in answers if a.version is not None), key=lambda a: a.ended)
    newest_before = 0
    i = 0
    for a in sorted((a for a in answers if a.version is not None), key=lambda a: a.started):
        while i < len(done) and done[i].ended < a.started:
            newest_before = max(newest_before, done[i].version or 0)
            i += 1
        assert a.version is not None and a.version >= newest_before, (
            f"{what}: {a} served version {a.version} after version {newest_before} had been served"
        )


def ready(url: str) -> tuple[int, Any]:
    r = httpx.get(f"{url}/ready", timeout=10)
    return r.status_code, r.json()


# -- faketime ---------------------------------------------------------------------------------------


def libfaketime() -> str:
    """The libfaketime preload library; installed with apt-get when missing (tests run as root)."""

    def find() -> str | None:
        hits = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/*.so.1"))
        return hits[0] if hits else None

    found = find()
    if found is None and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "faketime"]
        if subprocess.run(install, env=env, check=False, capture_output=True, timeout=600).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True, timeout=600)
            subprocess.run(install, env=env, check=False, capture_output=True, timeout=600)
        found = find()
    if found is None:
        raise RuntimeError("libfaketime is not installed and apt-get could not install it (apt-get install faketime)")
    return found


def skewed(offset: str) -> dict[str, str]:
    """Environment that runs a process with its wall clock moved by ``offset`` (e.g. ``"-2d"``,
    ``"+7h"``); the monotonic clock stays real.

    ``FAKETIME_FORCE_MONOTONIC_FIX=0``: libfaketime's default rewrites the deadlines of
    ``pthread_cond_timedwait`` on monotonic condition variables, which stretches the GIL
    hand-offs between granian's I/O thread and the event loop to 100-200 ms (an artifact of the
    tool, not of skew). The process's clocks are skewed all the same."""
    return {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_FORCE_MONOTONIC_FIX": "0",
    }
