"""The soak with faults (``python -m bench.soak --faults``, issue 11): two hosts, writes, kill -9.

Host A is the control plane (publishing to Redis) and edge A on data dir A; host B is
``python -m server sync`` (following one real redis-server) and edge B on data dir B. For
``seconds``, in windows:

* **load**: wrk at ``rate`` (50 % of edge A's measured peak) against edge A and a lighter
  constant load (``b_share`` of the peak) against edge B, unique contexts per request;
* **version checkers**: per edge, a few keep-alive connections polling ``/features/evaluated``;
  a ``flagStateVersion`` lower than the previous one on the same connection counts as a version
  going backwards (a connection stays on one worker, so this must never happen);
* **writes**: an admin write every ``write_every`` s, toggling one of a few flags through the API;
  each acknowledged (200) write is recorded. A write that fails is retried with the same state
  until acknowledged, so the last acknowledged state of every flag is its final state;
* **faults** every ``fault_interval`` s, in rotation: kill -9 of one worker of edge A (granian
  respawns it), of ``sync`` (restarted after ``downtime``), of one worker of edge B, of Redis
  (restarted empty after ``downtime``, a crash without persistence). Each fault records its time,
  its recovery and the requests that failed around it;
* **RSS** of every process by role (control plane, edges' masters and workers, sync, Redis),
  sampled every few seconds. Worker pids change after a kill, so a role's slope is the
  least-squares slope within each pid (one intercept per pid: a fresh process starting lower is
  not growth), over the samples after the warm-up.

Afterwards, with faults stopped, every flag's last acknowledged state must be served by both
edges within ``settle_s``. It passes with 0 lost writes, 0 versions going backwards on any
connection, every fault recovered, no failed request away from a fault (503s of load shedding
are reported apart: the edge refusing excess load on a shared CPU is by design), and every
role's RSS slope within ``rss_tolerance`` MB/min (judged only when at least 5 minutes follow
the warm-up).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson

from bench import datasets
from bench.paced_wrk import Load, peak, wrk
from bench.processes import (
    Background,
    bootstrap_project,
    create_flags,
    free_port,
    patch_flag,
    process,
    rss_mb,
    worker_pids,
)
from bench.redis_server import RedisServer
from bench.stack import EDGE_CPU, LOAD_CPU, wait_serving

# Rotation of the faults; "edge-worker-*" kills one granian worker of that host's edge.
FAULT_KINDS = ("edge-worker-a", "sync", "edge-worker-b", "redis")
# Flags the writer toggles (created enabled, in one commit, next to W2's 350).
WRITE_FLAGS = [f"soak-write-{i}" for i in range(8)]
# A respawned process (edge worker, sync, Redis) compiles or reloads its state in its first
# seconds; its samples from that time are warm-up, not growth.
RESPAWN_WARMUP_S = 20.0
# Below this much time after the warm-up a slope is mostly noise: reported, not judged.
MIN_JUDGED_S = 300.0
# Around a fault, failed requests are its own: from this long before the kill to this long
# after the recovery (clock reads on either side, connections that die with the worker).
FAULT_SLACK_S = 2.0


@dataclass(frozen=True)
class FaultsConfig:
    seconds: float
    window_s: float = 30
    fault_interval: float = 120
    workers: int = 2
    warmup_s: float = 300
    # Tolerated RSS slope of any role after the warm-up (12.5 MB over a 25-minute judged span).
    rss_tolerance: float = 0.5
    peak_seconds: float = 5
    # Edge B's constant load as a share of edge A's peak (A gets 50 %).
    b_share: float = 0.1
    write_every: float = 1.5
    # How long sync and Redis stay down, so that writes are published while they are away.
    downtime: float = 3.0
    settle_s: float = 60
    rss_every: float = 5.0
    checker_connections: int = 3
    checker_pause: float = 0.05
    # The control plane's --redis-retention-bytes. This soak writes a W2-sized environment
    # (about 100 kB per change set) every 1.5 s, far above real admin traffic; a small bound
    # lets Redis reach its plateau within the minutes between two Redis kills.
    redis_retention_bytes: int = 2 << 20


# -- the two hosts ---------------------------------------------------------------------------------


@dataclass
class Hosts:
    tmp: Path
    admin_url: str
    auth: dict[str, str]
    key: str
    cp_pid: int
    edge_a: str
    edge_a_pid: int
    edge_b: str
    edge_b_pid: int
    workers: int
    flags: int
    redis: RedisServer
    sync: Background


def ready_version(url: str) -> int | None:
    """The store version an edge's ``/ready`` reports (None: not answering)."""
    try:
        r = httpx.get(f"{url}/ready", timeout=5)
        return int(r.json()["version"]) if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


@contextmanager
def two_hosts(tmp: Path, workers: int, redis_retention_bytes: int) -> Iterator[Hosts]:
    """Redis, sync for host B, the control plane loaded with W2 (+ the write flags), then both edges."""
    with ExitStack() as stack:
        redis = RedisServer(tmp / "redis", free_port())
        redis.start()
        stack.callback(redis.kill)
        a, b = tmp / "a", tmp / "b"
        a.mkdir()
        b.mkdir()
        sync = Background(["server", "sync", "--data-dir", str(b), "--redis-url", redis.url], tmp / "sync.log")
        sync.start()
        stack.callback(sync.kill)
        cp = free_port()
        admin_url = f"http://127.0.0.1:{cp}"
        cp_proc = stack.enter_context(
            process(
                [
                    "control_plane",
                    "serve",
                    "--data-dir",
                    str(a),
                    "--port",
                    str(cp),
                    "--redis-url",
                    redis.url,
                    "--redis-retention-bytes",
                    str(redis_retention_bytes),
                ],
                f"{admin_url}/health",
                tmp / "control_plane.log",
                cpu=LOAD_CPU,
                timeout=60,
            )
        )
        flags = datasets.flags_for("w2")
        with httpx.Client(base_url=admin_url, timeout=60) as admin:
            auth, keys = bootstrap_project(admin)
            datasets.load(admin, auth, "shop", "prod", flags)
            r = create_flags(admin, auth, WRITE_FLAGS)
            if r.status_code != 201:
                raise RuntimeError(f"creating the write flags: {r.status_code} {r.text}")
        if not wait_until(lambda: (b / "snapshots").exists(), 60):
            raise RuntimeError(f"sync never created host B's LMDB:\n{(tmp / 'sync.log').read_text()[-2000:]}")
        urls, pids = [], []
        for name, data, cpu in (("a", a, EDGE_CPU), ("b", b, None)):
            port = free_port()
            # Edge A on the edge core like every bench stack; B floats (wrk has the other core).
            proc = stack.enter_context(
                process(
                    ["server", "serve", "--data-dir", str(data), "--port", str(port), "--workers", str(workers)],
                    f"http://127.0.0.1:{port}/health",
                    tmp / f"edge-{name}.log",
                    cpu=cpu,
                    timeout=120,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
            pids.append(proc.pid)
        total = len(flags) + len(WRITE_FLAGS)
        for url in urls:
            wait_serving(url, keys["client"], total, timeout=300)
        yield Hosts(
            tmp, admin_url, auth, keys["client"], cp_proc.pid, urls[0], pids[0], urls[1], pids[1], workers, total,
            redis, sync,
        )  # fmt: skip


# -- version checkers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A checker request that got no 200 (``at``: seconds since the soak started)."""

    edge: str
    at: float
    error: str

    @property
    def shed(self) -> bool:
        """A 503 of load shedding (the edge refusing excess load, by design), not a fault's."""
        return self.error.startswith("503 ")


@dataclass(frozen=True)
class Backwards:
    edge: str
    connection: int
    at: float
    before: int
    after: int


class VersionChecker:
    """Keep-alive connections to one edge, each polling ``/features/evaluated`` in a loop.

    Per connection, the version must never drop (a connection lives on one worker). Across
    connections a drop is counted too, but only for information: each worker polls LMDB on its
    own, so two workers may be a poll interval apart.
    """

    def __init__(self, name: str, url: str, key: str, t0: float, connections: int, pause: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.name, self.key, self.t0, self.connections, self.pause = name, key, t0, connections, pause
        self.requests = 0
        self.failures: list[Failure] = []
        self.backwards: list[Backwards] = []
        self.backwards_across = 0
        self.newest = 0
        # The newest version any completed request saw: a request started later must not see less.
        self._completed_max = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _run(self, slot: int) -> None:
        path = "/features/evaluated?" + urlencode(
            {"publishableKey": self.key, "context.user.id": f"checker-{self.name}-{slot}"}
        )
        conn: http.client.HTTPConnection | None = None
        last: int | None = None
        while not self._stop.is_set():
            with self._lock:
                floor = self._completed_max
            version: int | None = None
            error: str | None = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                    last = None  # a new connection (maybe to another worker) starts its own sequence
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                if r.status == 200:
                    version = int(orjson.loads(body)["flagStateVersion"])
                else:
                    error = f"{r.status} {body[:200].decode(errors='replace')}"
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                error = f"{type(e).__name__}: {e}"
                if conn is not None:
                    conn.close()
                    conn = None
            at = time.monotonic() - self.t0
            with self._lock:
                self.requests += 1
                if error is not None:
                    self.failures.append(Failure(self.name, round(at, 3), error))
                elif version is not None:
                    if last is not None and version < last:
                        self.backwards.append(Backwards(self.name, slot, round(at, 3), last, version))
                    if version < floor:
                        self.backwards_across += 1
                    last = version
                    self._completed_max = max(self._completed_max, version)
                    self.newest = self._completed_max
            self._stop.wait(self.pause)
        if conn is not None:
            conn.close()

    def start(self) -> None:
        for i in range(self.connections):
            t = threading.Thread(target=self._run, args=(i,), name=f"checker-{self.name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


# -- writes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """An acknowledged admin write: ``key`` set to ``enabled`` (``at``: seconds since the start)."""

    key: str
    enabled: bool
    at: float
    latency_ms: float
    attempts: int


class Writer:
    """Toggles the write flags in turn, one admin write every ``every`` seconds."""

    def __init__(self, admin_url: str, auth: dict[str, str], t0: float, every: float) -> None:
        self.admin = httpx.Client(base_url=admin_url, timeout=10)
        self.auth, self.t0, self.every = auth, t0, every
        # Every write flag was created enabled.
        self.state = dict.fromkeys(WRITE_FLAGS, True)
        self.acknowledged: list[Write] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def _write(self, key: str, enabled: bool) -> Write | None:
        """Retry the same write until it is acknowledged: a failed write may or may not have been
        applied, and repeating it makes the flag's final state known. Gives up 30 s after stop."""
        attempts = 0
        give_up: float | None = None
        while True:
            attempts += 1
            started = time.monotonic()
            try:
                r = patch_flag(self.admin, self.auth, key, enabled)
                if r.status_code == 200:
                    done = time.monotonic()
                    return Write(key, enabled, round(done - self.t0, 3), round(1000 * (done - started), 1), attempts)
                self.errors.append(f"{started - self.t0:.1f}s {key}: {r.status_code} {r.text[:200]}")
            except httpx.HTTPError as e:
                self.errors.append(f"{started - self.t0:.1f}s {key}: {type(e).__name__}: {e}")
            if self._stop.is_set():
                give_up = give_up or time.monotonic() + 30
                if time.monotonic() > give_up:
                    return None
            time.sleep(0.5)

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.every):
            key = WRITE_FLAGS[n % len(WRITE_FLAGS)]
            n += 1
            write = self._write(key, not self.state[key])
            if write is None:
                # Unknown outcome: the flag's final state is whatever the store has; not checked.
                self.state.pop(key, None)
                continue
            self.state[key] = write.enabled
            self.acknowledged.append(write)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self.admin.close()


def served_states(url: str, key: str) -> dict[str, bool] | None:
    """What ``url`` serves for the write flags (None: no 200)."""
    try:
        r = httpx.get(f"{url}/features/evaluated", params={"publishableKey": key}, timeout=10)
        if r.status_code != 200:
            return None
        features = r.json()["features"]
        return {k: bool(features.get(k, {}).get("isEnabled")) for k in WRITE_FLAGS}
    except (httpx.HTTPError, ValueError, KeyError):
        return None


# -- faults ----------------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    # Seconds since the soak started.
    at: float
    victim_pid: int | None = None
    recovered: bool = False
    recovered_at: float | None = None
    # kill → the process is back (worker respawned and ready, sync/Redis restarted).
    recovery_s: float | None = None
    # sync/Redis: restart → edge B serves the version edge A served at the restart.
    caught_up_s: float | None = None
    # Failed checker requests around the fault (503s of load shedding apart, in checker_shed).
    checker_failed: int = 0
    checker_shed: int = 0
    # wrk failures (A and B; shed 503s apart) in the windows this fault overlaps, and those windows.
    wrk_failed: int = 0
    wrk_shed: int = 0
    windows: list[int] = field(default_factory=list)

    def span(self) -> tuple[float, float]:
        end = self.recovered_at if self.recovered_at is not None else float("inf")
        return self.at - FAULT_SLACK_S, end + FAULT_SLACK_S


class Faults:
    """Injects :data:`FAULT_KINDS` in rotation every ``interval`` seconds until ``until``."""

    def __init__(self, hosts: Hosts, t0: float, interval: float, until: float, downtime: float) -> None:
        self.hosts, self.t0, self.interval, self.until, self.downtime = hosts, t0, interval, until, downtime
        self.done: list[Fault] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _kill_worker(self, fault: Fault, edge_pid: int, url: str) -> None:
        before = set(worker_pids(edge_pid))
        victim = min(before)
        fault.victim_pid = victim
        os.kill(victim, signal.SIGKILL)
        workers = self.hosts.workers

        def respawned() -> bool:
            now = set(worker_pids(edge_pid))
            return len(now) == workers and victim not in now

        fault.recovered = wait_until(respawned, 60) and wait_until(lambda: ready_version(url) is not None, 60)

    def _kill_and_restart(self, fault: Fault, kill: Callable[[], None], start: Callable[[], None]) -> None:
        kill()
        # Writes keep being acknowledged meanwhile: B must get them once the process is back.
        self._stop.wait(self.downtime)
        target = ready_version(self.hosts.edge_a) or 0
        start()
        restarted = time.monotonic()
        fault.recovered = wait_until(lambda: (ready_version(self.hosts.edge_b) or 0) >= target, 60)
        if fault.recovered:
            fault.caught_up_s = round(time.monotonic() - restarted, 2)

    def inject(self, kind: str) -> Fault:
        fault = Fault(kind, round(self.now(), 3))
        h = self.hosts
        if kind == "edge-worker-a":
            self._kill_worker(fault, h.edge_a_pid, h.edge_a)
        elif kind == "edge-worker-b":
            self._kill_worker(fault, h.edge_b_pid, h.edge_b)
        elif kind == "sync":
            fault.victim_pid = h.sync.proc.pid if h.sync.proc else None
            self._kill_and_restart(fault, h.sync.kill, h.sync.start)
        elif kind == "redis":
            fault.victim_pid = h.redis.proc.pid if h.redis.proc else None
            self._kill_and_restart(fault, h.redis.kill, h.redis.start)
        else:
            raise ValueError(kind)
        fault.recovered_at = round(self.now(), 3)
        fault.recovery_s = round(fault.recovered_at - fault.at, 2)
        return fault

    def _run(self) -> None:
        n = 1
        while n * self.interval < self.until:
            if self._stop.wait(max(0.0, self.t0 + n * self.interval - time.monotonic())):
                return
            kind = FAULT_KINDS[(n - 1) % len(FAULT_KINDS)]
            fault = self.inject(kind)
            self.done.append(fault)
            print(
                f"fault {kind} at {fault.at:.0f} s (pid {fault.victim_pid}): "
                f"{'recovered' if fault.recovered else 'NOT RECOVERED'} in {fault.recovery_s} s"
                + (f", B caught up {fault.caught_up_s} s after the restart" if fault.caught_up_s is not None else ""),
                flush=True,
            )
            n += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Let a fault in progress finish (its process must come back), inject no more."""
        self._stop.set()
        self._thread.join(180)


# -- RSS -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float
    role: str
    pid: int
    mb: float


class RssSampler:
    """RSS of every process by role, every ``every`` seconds."""

    def __init__(self, hosts: Hosts, t0: float, every: float) -> None:
        self.hosts, self.t0, self.every = hosts, t0, every
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def processes(self) -> list[tuple[str, int]]:
        h = self.hosts
        found = [("control-plane", h.cp_pid), *(("control-plane-worker", p) for p in worker_pids(h.cp_pid))]
        for name, pid in (("edge-a", h.edge_a_pid), ("edge-b", h.edge_b_pid)):
            found += [(name, pid), *((f"{name}-worker", p) for p in worker_pids(pid))]
        if h.sync.proc is not None and h.sync.proc.poll() is None:
            found.append(("sync", h.sync.proc.pid))
        if h.redis.proc is not None and h.redis.proc.poll() is None:
            found.append(("redis", h.redis.proc.pid))
        return found

    def sample(self) -> list[Sample]:
        at = round(time.monotonic() - self.t0, 2)
        taken = []
        for role, pid in self.processes():
            # A process that died between the listing and the read (a fault) is skipped: the
            # next sample has its successor.
            with contextlib.suppress(OSError, RuntimeError):
                taken.append(Sample(at, role, pid, round(rss_mb(pid), 2)))
        self.samples.extend(taken)
        return taken

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


@dataclass(frozen=True)
class Slope:
    mb_per_min: float | None
    samples: int
    pids: int
    span_min: float
    # None: too little time after the warm-up to judge.
    flat: bool | None


def rss_slopes(samples: list[Sample], warmup_s: float, tolerance: float, min_judged_s: float) -> dict[str, Slope]:
    """Per role, the least-squares slope (MB/min) of RSS over time within each pid, after warm-up.

    One intercept per pid: a worker respawned after a kill (or Redis restarted empty) starts
    lower than the one it replaces, which is not growth; growth is what each process does
    over its own lifetime. A pid first seen after the start also skips its own first
    :data:`RESPAWN_WARMUP_S` seconds (it is compiling or reloading its state).
    """
    first_seen: dict[int, float] = {}
    for s in sorted(samples, key=lambda s: s.at):
        first_seen.setdefault(s.pid, s.at)
    start = min(first_seen.values(), default=0.0)
    by_role: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for s in samples:
        born = first_seen[s.pid]
        if s.at < warmup_s or (born > start and s.at < born + RESPAWN_WARMUP_S):
            continue
        by_role.setdefault(s.role, {}).setdefault(s.pid, []).append((s.at / 60, s.mb))
    slopes: dict[str, Slope] = {}
    for role, pids in sorted(by_role.items()):
        num = den = 0.0
        times = [t for points in pids.values() for t, _ in points]
        for points in pids.values():
            mt = statistics.fmean(t for t, _ in points)
            mr = statistics.fmean(r for _, r in points)
            num += sum((t - mt) * (r - mr) for t, r in points)
            den += sum((t - mt) ** 2 for t, _ in points)
        slope = num / den if den > 0 else None
        span = max(times) - min(times)
        judged = span * 60 >= min_judged_s and slope is not None
        flat = (abs(slope) <= tolerance if slope is not None else None) if judged else None
        slopes[role] = Slope(None if slope is None else round(slope, 3), len(times), len(pids), round(span, 1), flat)
    return slopes


# -- the run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultWindow:
    index: int
    start_s: float
    end_s: float
    a: Load
    b: Load
    # Role → RSS (MB) of each of its processes at the end of the window.
    rss_mb: dict[str, list[float]]


@dataclass
class FaultsReport:
    config: FaultsConfig
    rate_a: float
    rate_b: float
    windows: list[FaultWindow]
    faults: list[Fault]
    checker_requests: dict[str, int]
    checker_failures: list[Failure]
    backwards: list[Backwards]
    backwards_across: dict[str, int]
    writes: list[Write]
    write_errors: list[str]
    lost: list[dict[str, Any]]
    settled_s: float | None
    slopes: dict[str, Slope]
    unexplained_checker: list[Failure] = field(default_factory=list)
    unexplained_wrk: int = 0

    @property
    def wrk_requests(self) -> int:
        return sum(w.a.requests + w.b.requests for w in self.windows)

    @property
    def requests(self) -> int:
        return self.wrk_requests + sum(self.checker_requests.values())

    def criteria(self) -> dict[str, bool]:
        kinds = {f.kind for f in self.faults}
        return {
            "writes_acknowledged": len(self.writes) > 0,
            "no_lost_writes": not self.lost,
            "no_versions_backwards": not self.backwards,
            "every_fault_recovered": all(f.recovered for f in self.faults),
            "no_failures_away_from_faults": not self.unexplained_checker and self.unexplained_wrk == 0,
            "rss_flat": all(s.flat is not False for s in self.slopes.values()),
            # Informational in a run shorter than one rotation; reported, not required.
            "every_fault_kind": kinds == set(FAULT_KINDS) or len(self.faults) < len(FAULT_KINDS),
        }

    @property
    def ok(self) -> bool:
        return all(self.criteria().values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "rate_a": self.rate_a,
            "rate_b": self.rate_b,
            "requests": {
                "total": self.requests,
                "wrk_a": sum(w.a.requests for w in self.windows),
                "wrk_b": sum(w.b.requests for w in self.windows),
                **{f"checker_{k}": v for k, v in self.checker_requests.items()},
            },
            "faults": [asdict(f) for f in self.faults],
            # 503 + Retry-After: the edge shedding load (CPU shared with wrk and the other
            # processes), by design; reported, not counted as a fault's failure.
            "shed_503": {
                "wrk": sum(w.a.count(503) + w.b.count(503) for w in self.windows),
                "checker": sum(1 for x in self.checker_failures if x.shed),
            },
            "failures_away_from_faults": {
                "wrk": self.unexplained_wrk,
                "checker": len(self.unexplained_checker),
                "examples": [asdict(f) for f in self.unexplained_checker[:10]],
            },
            "writes": {
                "acknowledged": len(self.writes),
                "retried_attempts": len(self.write_errors),
                "retry_examples": self.write_errors[:10],
                "lost": len(self.lost),
                "lost_detail": self.lost,
                "settled_s": self.settled_s,
                "latency_ms_p50": _pct([w.latency_ms for w in self.writes], 50),
                "latency_ms_p99": _pct([w.latency_ms for w in self.writes], 99),
            },
            "versions_backwards": {
                "per_connection": len(self.backwards),
                "examples": [asdict(b) for b in self.backwards[:10]],
                "across_connections_info": self.backwards_across,
            },
            "rss": {
                "warmup_s": self.config.warmup_s,
                "tolerance_mb_per_min": self.config.rss_tolerance,
                "slopes": {role: asdict(s) for role, s in self.slopes.items()},
            },
            "windows": [
                {
                    "index": w.index,
                    "start_s": w.start_s,
                    "end_s": w.end_s,
                    **{name: _load_summary(load) for name, load in (("a", w.a), ("b", w.b))},
                    "rss_mb": w.rss_mb,
                }
                for w in self.windows
            ],
            "criteria": self.criteria(),
            "pass": self.ok,
        }

    def summary(self) -> str:
        lines = [
            f"faults soak: {self.config.seconds / 60:.1f} min, edge A at {self.rate_a:.0f} req/s, "
            f"edge B at {self.rate_b:.0f} req/s, {self.requests} requests",
            f"faults: {len(self.faults)} "
            + ", ".join(
                f"{f.kind}@{f.at:.0f}s (recovery {f.recovery_s} s, {f.wrk_failed} wrk + {f.checker_failed} "
                f"checker failed, {f.wrk_shed + f.checker_shed} shed)"
                for f in self.faults
            ),
            f"failures away from faults (503 shedding apart): {self.unexplained_wrk} wrk, "
            f"{len(self.unexplained_checker)} checker; shed 503s: "
            f"{sum(w.a.count(503) + w.b.count(503) for w in self.windows)} wrk, "
            f"{sum(1 for x in self.checker_failures if x.shed)} checker",
            f"writes: {len(self.writes)} acknowledged ({len(self.write_errors)} retried attempts), "
            f"{len(self.lost)} lost; both edges settled in {self.settled_s} s",
            f"versions backwards: {len(self.backwards)} on a connection "
            f"(across connections, informational: {self.backwards_across})",
            "RSS slope after warm-up (MB/min, tolerance "
            f"{self.config.rss_tolerance}): "
            + ", ".join(
                f"{role} {s.mb_per_min} ({'flat' if s.flat else 'NOT FLAT' if s.flat is False else 'not judged'})"
                for role, s in self.slopes.items()
            ),
            "p50/p99 per window (ms), A: "
            + " ".join(f"{w.a.p50_ms:.1f}/{w.a.p99_ms:.1f}" for w in self.windows)
            + "; B: "
            + " ".join(f"{w.b.p50_ms:.1f}/{w.b.p99_ms:.1f}" for w in self.windows),
            "criteria: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in self.criteria().items()),
        ]
        return "\n".join(lines)


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _load_summary(load: Load) -> dict[str, Any]:
    return {
        "requests": load.requests,
        "rps": load.rps,
        "p50_ms": load.p50_ms,
        "p99_ms": load.p99_ms,
        "failed": load.failed,
        "statuses": load.statuses,
        "socket_errors": load.socket_errors,
    }


def _settle(hosts: Hosts, expected: dict[str, bool], timeout: float) -> tuple[list[dict[str, Any]], float | None]:
    """Wait until both edges serve ``expected``; the flags either edge still gets wrong after it."""
    started = time.monotonic()
    served: dict[str, dict[str, bool] | None] = {}

    def both() -> bool:
        for name, url in (("a", hosts.edge_a), ("b", hosts.edge_b)):
            served[name] = served_states(url, hosts.key)
        return all(s is not None and all(s[k] == v for k, v in expected.items()) for s in served.values())

    if wait_until(both, timeout, interval=0.25):
        return [], round(time.monotonic() - started, 2)
    lost = [
        {"edge": name, "flag": k, "acknowledged": v, "served": None if s is None else s[k]}
        for name, s in served.items()
        for k, v in expected.items()
        if s is None or s[k] != v
    ]
    return lost, None


def run(config: FaultsConfig, tmp: Path | None = None) -> tuple[Load, FaultsReport]:
    """Start both hosts, measure edge A's peak, then soak with writes and faults (see the module)."""
    with ExitStack() as stack:
        if tmp is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flagedge-soak-faults-")))
        hosts = stack.enter_context(two_hosts(tmp, config.workers, config.redis_retention_bytes))
        script = datasets.evaluated_script(hosts.key, "w2")
        top = peak(hosts.edge_a, script, seconds=config.peak_seconds)
        print(f"peak (edge A): {top.line()}", flush=True)
        rate_a, rate_b = top.rps / 2, top.rps * config.b_share

        t0 = time.monotonic()
        checkers = [
            VersionChecker(name, url, hosts.key, t0, config.checker_connections, config.checker_pause)
            for name, url in (("a", hosts.edge_a), ("b", hosts.edge_b))
        ]
        writer = Writer(hosts.admin_url, hosts.auth, t0, config.write_every)
        faults = Faults(hosts, t0, config.fault_interval, config.seconds, config.downtime)
        sampler = RssSampler(hosts, t0, config.rss_every)
        for c in checkers:
            c.start()
        writer.start()
        faults.start()
        sampler.start()
        stack.callback(sampler.stop)
        for c in checkers:
            stack.callback(c.stop)
        stack.callback(writer.stop)
        stack.callback(faults.stop)

        windows: list[FaultWindow] = []
        count = max(2, round(config.seconds / config.window_s))
        with ThreadPoolExecutor(2) as pool:
            for i in range(count):
                start = round(time.monotonic() - t0, 2)
                on_a = pool.submit(wrk, hosts.edge_a, script, 64, config.window_s, rate=rate_a)
                on_b = pool.submit(wrk, hosts.edge_b, script, 8, config.window_s, rate=rate_b)
                a, b = on_a.result(), on_b.result()
                end = round(time.monotonic() - t0, 2)
                rss: dict[str, list[float]] = {}
                for s in sampler.sample():
                    rss.setdefault(s.role, []).append(s.mb)
                windows.append(FaultWindow(i, start, end, a, b, rss))
                print(f"window {i + 1}/{count} [{start:.0f}-{end:.0f} s] A: {a.line()}", flush=True)
                print(f"    B: {b.line()}; versions A v{checkers[0].newest} B v{checkers[1].newest}", flush=True)

        # Faults stop first (a fault in progress finishes: its process must be back), then the
        # writes; then every acknowledged state must reach both edges.
        faults.stop()
        writer.stop()
        lost, settled = _settle(hosts, writer.state, config.settle_s)
        time.sleep(1)  # the checkers see the settled versions too
        for c in checkers:
            c.stop()
        sampler.stop()

    report = FaultsReport(
        config=config,
        rate_a=round(rate_a, 1),
        rate_b=round(rate_b, 1),
        windows=windows,
        faults=faults.done,
        checker_requests={c.name: c.requests for c in checkers},
        checker_failures=[f for c in checkers for f in c.failures],
        backwards=[b for c in checkers for b in c.backwards],
        backwards_across={c.name: c.backwards_across for c in checkers},
        writes=writer.acknowledged,
        write_errors=writer.errors,
        lost=lost,
        settled_s=settled,
        slopes=rss_slopes(
            sampler.samples, min(config.warmup_s, config.seconds / 3), config.rss_tolerance, MIN_JUDGED_S
        ),
    )
    _attribute(report)
    return top, report


def _attribute(report: FaultsReport) -> None:
    """Give every failed request to the fault it happened around; count the rest."""
    for f in report.faults:
        lo, hi = f.span()
        around = [x for x in report.checker_failures if lo <= x.at <= hi]
        f.checker_failed = sum(1 for x in around if not x.shed)
        f.checker_shed = len(around) - f.checker_failed
        f.windows = [w.index for w in report.windows if w.start_s <= hi and w.end_s >= lo]
        f.wrk_failed = sum(_broken(w.a) + _broken(w.b) for w in report.windows if w.index in f.windows)
        f.wrk_shed = sum(w.a.count(503) + w.b.count(503) for w in report.windows if w.index in f.windows)
    report.unexplained_checker = [
        x
        for x in report.checker_failures
        if not x.shed and not any(lo <= x.at <= hi for lo, hi in (f.span() for f in report.faults))
    ]
    with_fault = {i for f in report.faults for i in f.windows}
    report.unexplained_wrk = sum(_broken(w.a) + _broken(w.b) for w in report.windows if w.index not in with_fault)


def _broken(load: Load) -> int:
    """Failed requests that are not load shedding: socket errors, timeouts, statuses but 503."""
    return load.failed - load.count(503)
