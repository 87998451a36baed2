"""What one flag change costs at scale (issue 21): write → served on the same host and through
Redis + ``sync``, the edge worker's CPU time per one-flag change, and its memory.

For each flag count the ``scale-<n>`` dataset is loaded once through the control plane's API
(this checkout's), then every side (this checkout, and with ``--baseline`` another one, e.g. the
commit before incremental snapshots) starts from a copy of that control-plane database without
any snapshot: its control plane (with Redis) publishes it, edge A serves the control plane's
data dir, ``sync`` feeds a second data dir from Redis and edge B serves that (one worker each,
edges pinned to core 0). Then ``--changes`` times one flag's targeting is changed through the
admin API (``PATCH …/features/{key}/configurations``) and, from the write's 200, both edges'
``/ready`` is polled until it reports the version the write published. The write's own time
(request → 200: the control plane's build and validation) is reported too, the first one apart
(a control plane builds an environment whole on its first write after a start).

Edge CPU per change is measured two ways. ``cpu_ms_per_change``: the worker's CPU time (every
thread, from ``/proc/<pid>/task/*/schedstat``, nanoseconds) from the write until both edges served
it plus a settle time, less what the same time costs idle and what the ``/ready`` polls cost (both
measured beforehand on the same worker): on a busy machine its noise is a few milliseconds.
``refresh_cpu_ms``: a probe process of the same checkout (:data:`PROBE`, pinned to the other core)
holds its own ``server.state.EdgeState`` over the same store and reports the process CPU time of
the refreshes that bring it to the write's version: exactly a worker's work for the change,
without the HTTP server around it.

    python -m bench.change_cost --flags 1000 10000 --changes 10 --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import datasets
from bench.processes import THIS, Checkout, bootstrap_project, free_port, pinned, process, rss_mb, worker_pids
from bench.propagation import percentile
from bench.redis_server import RedisServer
from bench.stack import EDGE_CPU, LOAD_CPU
from contract.store import META, VERSION_KEY, open_env

SETTLE = 0.3
#: The refresh probe, run with the side's own code (``python -c``): the interface it uses,
#: ``EdgeState(data_dir, poll_interval).refresh()`` and ``.view.version``, is the same on both.
PROBE = r"""
import asyncio, json, sys, time
from pathlib import Path
from server.state import EdgeState

async def main():
    state = EdgeState(Path(sys.argv[1]), 3600)
    await state.refresh()
    print(json.dumps({"version": state.view.version}), flush=True)
    for line in sys.stdin:
        target, cpu = int(line), 0.0
        while state.view.version < target:
            started = time.process_time()
            await state.refresh()
            cpu += time.process_time() - started
            if state.view.version < target:
                await asyncio.sleep(0.005)
        print(json.dumps({"version": state.view.version, "cpu_ms": cpu * 1000}), flush=True)

asyncio.run(main())
"""
DB = "control_plane.sqlite3"
# The admin tokens are signed with it.
SECRET = "jwt_secret"


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in nanoseconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total


@dataclass(frozen=True)
class Loaded:
    flags: int
    data_dir: Path
    auth: dict[str, str]
    server_key: str
    flag_key: str


def load(n: int, tmp: Path) -> Loaded:
    """The ``scale-<n>`` dataset loaded through this checkout's control plane into ``tmp``."""
    cp = free_port()
    url = f"http://127.0.0.1:{cp}"
    args = ["control_plane", "serve", "--data-dir", str(tmp), "--port", str(cp)]
    flags = datasets.flags_for(f"scale-{n}")
    with (
        process(args, f"{url}/health", tmp / "load.log", cpu=LOAD_CPU),
        httpx.Client(base_url=url, timeout=60) as admin,
    ):
        auth, keys = bootstrap_project(admin)
        loaded = datasets.load(admin, auth, "shop", "prod", flags)
    print(f"  loaded {n} flags in {loaded.seconds} s", flush=True)
    return Loaded(n, tmp, auth, keys["server"], flags[0]["key"])


def _copy_database(loaded: Loaded, into: Path, checkout: Checkout) -> None:
    into.mkdir(parents=True)
    for f in [*loaded.data_dir.glob(f"{DB}*"), loaded.data_dir / SECRET]:
        shutil.copy2(f, into / f.name)
    _downgrade(into / DB, checkout)


def _downgrade(db: Path, checkout: Checkout) -> None:
    """Make the copy openable by an older ``checkout``: the migrations it does not know (this
    checkout loaded the data) are taken off again. A store refuses a database with a migration
    it does not know; those added since the work this bench measures only create tables (checked
    here: anything else is refused), which the older code never reads."""
    known = {int(f.name[:4]) for f in (checkout.root / "control_plane" / "schema").glob("[0-9][0-9][0-9][0-9]_*.sql")}
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version DESC").fetchall()
        for version, name in rows:
            if version in known:
                continue
            (script,) = (THIS.root / "control_plane" / "schema").glob(f"{version:04d}_*.sql")
            code = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("--"))
            statements = [s.strip() for s in code.split(";") if s.strip()]
            if not all(s.upper().startswith("CREATE TABLE ") for s in statements):
                raise SystemExit(f"migration {name} does more than create tables: the baseline cannot read it")
            tables = [s.split()[2] for s in statements]
            for table in tables:
                conn.execute(f"DROP TABLE {table}")
            conn.execute("DELETE FROM schema_migrations WHERE version = ?", (version,))
        conn.commit()
    finally:
        conn.close()


def _ready_version(client: httpx.Client) -> int:
    try:
        r = client.get("/ready")
        return int(r.json().get("version", 0))
    except (httpx.HTTPError, ValueError):
        return 0


def _wait_version(client: httpx.Client, version: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _ready_version(client) < version:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{client.base_url} never reached version {version}")
        time.sleep(0.05)


class StoreVersion:
    """The version of a data dir's store, read through LMDB's meta table only (the baseline's
    store may lack this checkout's tables)."""

    def __init__(self, data_dir: Path) -> None:
        self.env = open_env(data_dir, readonly=True)
        self.meta = self.env.open_db(META.encode(), create=False)

    def version(self) -> int:
        with self.env.begin() as txn:
            raw = txn.get(VERSION_KEY, db=self.meta)
        return int.from_bytes(raw, "big") if raw else 0

    def close(self) -> None:
        self.env.close()


class Probe:
    """:data:`PROBE` over one data dir, fed target versions on stdin."""

    def __init__(self, checkout: Checkout, data_dir: Path, log: Path) -> None:
        self.log = open(log, "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            pinned([str(checkout.python), "-c", PROBE, str(data_dir)], LOAD_CPU),
            cwd=checkout.root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, **checkout.env()},
            text=True,
        )
        self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the refresh probe exited with {self.proc.wait()}")
        out: dict[str, Any] = json.loads(line)
        return out

    def refresh_to(self, version: int) -> float:
        """CPU milliseconds the probe's refreshes took to reach ``version``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{version}\n")
        self.proc.stdin.flush()
        return float(self._read()["cpu_ms"])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()


@dataclass
class Side:
    """One checkout's control plane, edges and ``sync``, running, and a refresh probe per store."""

    admin: httpx.Client
    edges: dict[str, httpx.Client]
    workers: dict[str, int]
    store: StoreVersion
    probes: dict[str, Probe]


@contextmanager
def running(loaded: Loaded, checkout: Checkout, tmp: Path) -> Iterator[Side]:
    with ExitStack() as stack:
        a, b = tmp / "a", tmp / "b"
        _copy_database(loaded, a, checkout)
        b.mkdir()
        redis_server = RedisServer(tmp / "redis", free_port())
        redis_server.start()
        stack.callback(redis_server.kill)
        cp = free_port()
        cp_url = f"http://127.0.0.1:{cp}"
        cp_args = ["control_plane", "serve", "--data-dir", str(a), "--port", str(cp), "--redis-url", redis_server.url]
        stack.enter_context(
            process(cp_args, f"{cp_url}/health", tmp / "cp.log", cpu=LOAD_CPU, checkout=checkout, timeout=600)
        )
        admin = stack.enter_context(httpx.Client(base_url=cp_url, timeout=600))
        sync_cmd = ["server", "sync", "--data-dir", str(b), "--redis-url", redis_server.url]
        stack.enter_context(_background(checkout, sync_cmd, tmp / "sync.log"))
        deadline = time.monotonic() + 600
        while not (b / "snapshots" / "data.mdb").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("sync never wrote its store")
            time.sleep(0.1)
        edges, workers, probes = {}, {}, {}
        for name, data in (("same_host", a), ("via_redis", b)):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            edge = stack.enter_context(
                process(
                    ["server", "serve", "--data-dir", str(data), "--port", str(port), "--workers", "1"],
                    f"{url}/health",
                    tmp / f"edge-{name}.log",
                    cpu=EDGE_CPU,
                    timeout=600,
                    checkout=checkout,
                )
            )
            edges[name] = stack.enter_context(httpx.Client(base_url=url, timeout=600))
            (workers[name],) = worker_pids(edge.pid)
            probes[name] = Probe(checkout, data, tmp / f"probe-{name}.log")
            stack.callback(probes[name].close)
        store = StoreVersion(a)
        stack.callback(store.close)
        for client in edges.values():
            _wait_version(client, store.version(), 900)
        yield Side(admin, edges, workers, store, probes)


@contextmanager
def _background(checkout: Checkout, args: list[str], log: Path) -> Iterator[None]:
    """``python -m args`` of ``checkout`` (``sync``: no health URL), killed with its group after."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(checkout.python), "-m", *args],
            cwd=checkout.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **checkout.env()},
            start_new_session=True,
        )
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _idle_costs(side: Side) -> tuple[dict[str, float], dict[str, float]]:
    """Per worker: idle CPU ns per second, and CPU ns of one ``/ready`` poll."""
    idle, poll = {}, {}
    for name, pid in side.workers.items():
        before, started = cpu_ns(pid), time.monotonic()
        time.sleep(1.0)
        idle[name] = (cpu_ns(pid) - before) / (time.monotonic() - started)
        before, started = cpu_ns(pid), time.monotonic()
        for _ in range(50):
            side.edges[name].get("/ready")
        spent = cpu_ns(pid) - before - idle[name] * (time.monotonic() - started)
        poll[name] = max(0.0, spent / 50)
    return idle, poll


def measure(loaded: Loaded, checkout: Checkout, changes: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="flagedge-change-") as tmp_name,
        running(loaded, checkout, Path(tmp_name)) as side,
    ):
        rss_start = {name: round(rss_mb(pid), 1) for name, pid in side.workers.items()}
        idle, poll = _idle_costs(side)
        latency: dict[str, list[float]] = {name: [] for name in side.edges}
        cpu: dict[str, list[float]] = {name: [] for name in side.edges}
        refresh: dict[str, list[float]] = {name: [] for name in side.edges}
        # The write itself (request → 200): what the control plane's build costs before it acknowledges.
        writes: list[float] = []
        for i in range(changes):
            rule = {"filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": [f"plan-{i}"]}}
            before = {name: cpu_ns(pid) for name, pid in side.workers.items()}
            started, sent = time.monotonic(), time.perf_counter()
            r = side.admin.patch(
                f"/v1/projects/shop/features/{loaded.flag_key}/configurations",
                params={"environment": "prod"},
                json={"status": "active", "targeting": {"rules": [rule]}},
                headers=loaded.auth,
            )
            acked = time.perf_counter()
            writes.append((acked - sent) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"write failed: {r.status_code} {r.text[:300]}")
            target = side.store.version()
            polls = dict.fromkeys(side.edges, 0)
            pending = dict(side.edges)
            while pending:
                for name, client in list(pending.items()):
                    polls[name] += 1
                    if _ready_version(client) >= target:
                        latency[name].append((time.perf_counter() - acked) * 1000)
                        del pending[name]
                if time.perf_counter() - acked > 120:
                    raise RuntimeError(f"change {i} not served by {sorted(pending)} within 120 s")
                time.sleep(0.001)
            time.sleep(SETTLE)
            elapsed = time.monotonic() - started
            for name, pid in side.workers.items():
                spent = cpu_ns(pid) - before[name] - idle[name] * elapsed - poll[name] * polls[name]
                cpu[name].append(spent / 1e6)
                refresh[name].append(side.probes[name].refresh_to(target))
        rss_end = {name: round(rss_mb(pid), 1) for name, pid in side.workers.items()}
    out: dict[str, Any] = {
        "flags": loaded.flags,
        "changes": changes,
        "write_ms": {
            "first": round(writes[0], 1),
            "p50": round(statistics.median(writes), 1),
            "p99": round(percentile(writes, 0.99), 1),
        },
    }
    for name in latency:
        out[name] = {
            "p50_ms": round(statistics.median(latency[name]), 1),
            "p99_ms": round(percentile(latency[name], 0.99), 1),
            "cpu_ms_per_change": round(statistics.median(cpu[name]), 2),
            "refresh_cpu_ms": round(statistics.median(refresh[name]), 2),
            "rss_mb_start": rss_start[name],
            "rss_mb_end": rss_end[name],
        }
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| flags | side | same host p50 / p99 ms | via Redis p50 / p99 ms "
        "| worker CPU ms per change (same host / via Redis) | refresh CPU ms (probe) "
        "| worker RSS MB (start → end) | write ms (first; p50 / p99) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        a, b = row["same_host"], row["via_redis"]
        lines.append(
            f"| {row['flags']:,} | {row['side']} | {a['p50_ms']} / {a['p99_ms']} | {b['p50_ms']} / {b['p99_ms']} | "
            f"{a['cpu_ms_per_change']} / {b['cpu_ms_per_change']} | "
            f"{a['refresh_cpu_ms']} / {b['refresh_cpu_ms']} | {a['rss_mb_start']} → {a['rss_mb_end']} | "
            f"{row['write_ms']['first']}; {row['write_ms']['p50']} / {row['write_ms']['p99']} |"
        )
    return "\n".join(lines)


def curve(counts: list[int], changes: int, sides: dict[str, Checkout] | None = None) -> list[dict[str, Any]]:
    """One row per flag count and side (default: this checkout only)."""
    rows = []
    for n in counts:
        with tempfile.TemporaryDirectory(prefix=f"flagedge-scale-{n}-") as tmp:
            loaded = load(n, Path(tmp))
            for side, checkout in (sides or {"this": THIS}).items():
                row = {"side": side, **measure(loaded, checkout, changes)}
                print(f"  {json.dumps(row)}", flush=True)
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.change_cost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flags", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--baseline", type=Path, help="another checkout (its extension built), measured first")
    parser.add_argument("--baseline-python", type=Path, help="its Python (default: the running one)")
    ns = parser.parse_args(argv)
    sides = {"this": THIS}
    if ns.baseline is not None:
        sides = {"baseline": Checkout(ns.baseline.resolve(), ns.baseline_python or THIS.python), **sides}
    rows = curve(ns.flags, ns.changes, sides)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
