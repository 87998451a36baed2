"""What the replicas' leader spends publishing a one-flag write another replica committed (issue 21).

Two control planes on one PostgreSQL (``--database-url``, the tests' server: ``fsync=off``): A
starts first and publishes (the leader), B is a standby. The ``scale-<n>`` dataset is loaded once
through B; every side (this checkout, and with ``--baseline`` another one) then starts both
replicas on a copy of that database (``CREATE DATABASE … TEMPLATE``). ``--changes`` times one
flag's targeting is changed through B's admin API; ``write_ms`` is B's request (its own build and
validation), ``published_ms`` the time from B's answer until the leader has published it (the
outbox is empty again: a ``NOTIFY`` wakes the leader, which drains and records the publish),
polled every 5 ms. The leader's ``/ready`` reports how its drains built the environments
(``builds``, when the side has them). ``leader_healthy_s``: from starting A until it answers
``/health``, which it does after its takeover (a republish of every project).

``--alternate``: a third replica C (a standby too) starts, and the changes alternate between B and
C, as behind a load balancer: each write comes right after the other replica's, so ``write_ms`` is
what a replica's write costs when its kept build misses the other's last write (the first two
writes, each replica's first after its warm-up, are reported apart as ``first_write_ms``). The
dataset is then loaded through the first side's checkout (a baseline cannot open a database a newer
checkout migrated).

    python -m bench.leader_drain --flags 10000 --changes 5 --baseline /tmp/base
    python -m bench.leader_drain --flags 10000 --changes 10 --alternate --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import datasets
from bench.processes import THIS, Checkout, bootstrap_project, free_port, on_rule, process
from tests.support.postgres_server import PostgresServer

SECRETS = ["--jwt-secret", "bench-" + "j" * 40, "--key-encryption-secret", "bench-" + "k" * 40]


def _replica(stack: ExitStack, checkout: Checkout, url: str, data_dir: Path) -> str:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True)
    args = ["control_plane", "serve", "--data-dir", str(data_dir), "--port", str(port), "--database-url", url]
    stack.enter_context(process([*args, *SECRETS], f"{base}/health", data_dir / "log", checkout=checkout, timeout=600))
    return base


def _drained(url: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT COUNT(*) FROM publish_outbox").fetchone()
            if row is not None and row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the leader did not drain the outbox")
            time.sleep(0.005)


def load(server: PostgresServer, n: int, tmp: Path, checkout: Checkout = THIS) -> tuple[str, dict[str, str], str]:
    """The dataset loaded through a leader and a standby into database ``loaded_<n>``."""
    name = f"loaded_{n}"
    url = server.create_database(template="template0", name=name)
    flags = datasets.flags_for(f"scale-{n}")
    with ExitStack() as stack:
        _replica(stack, checkout, url, tmp / "load-a")
        b = _replica(stack, checkout, url, tmp / "load-b")
        admin = stack.enter_context(httpx.Client(base_url=b, timeout=600))
        auth, _ = bootstrap_project(admin)
        loaded = datasets.load(admin, auth, "shop", "prod", flags)
        _drained(url)
    print(f"  loaded {n} flags in {loaded.seconds} s", flush=True)
    return name, auth, flags[0]["key"]


def measure(
    server: PostgresServer,
    template: str,
    auth: dict[str, str],
    key: str,
    checkout: Checkout,
    tmp: Path,
    changes: int,
    alternate: bool = False,
) -> dict[str, Any]:
    url = server.create_database(template=template)
    with ExitStack() as stack:
        started = time.perf_counter()
        a = _replica(stack, checkout, url, tmp / "a")  # first: it takes the publish lock
        healthy = time.perf_counter() - started
        b = _replica(stack, checkout, url, tmp / "b")
        admins = [stack.enter_context(httpx.Client(base_url=b, timeout=600))]
        if alternate:
            c = _replica(stack, checkout, url, tmp / "c")
            admins.append(stack.enter_context(httpx.Client(base_url=c, timeout=600)))
        leader = stack.enter_context(httpx.Client(base_url=a, timeout=60))
        assert leader.get("/ready").json()["publish"]["role"] == "leader"
        _drained(url)
        writes, published = [], []
        for i in range(changes):
            started = time.perf_counter()
            r = admins[i % len(admins)].patch(
                f"/v1/projects/shop/features/{key}/configurations",
                params={"environment": "prod"},
                json=on_rule(i % 2 == 0),
                headers=auth,
            )
            answered = time.perf_counter()
            assert r.status_code == 200, r.text
            _drained(url)
            writes.append((answered - started) * 1000)
            published.append((time.perf_counter() - answered) * 1000)
        ready = leader.get("/ready").json()["publish"]
    first = len(admins) if alternate else 0
    return {
        "leader_healthy_s": round(healthy, 2),
        **({"first_write_ms": [round(x, 1) for x in writes[:first]]} if alternate else {}),
        "write_ms": [round(x, 1) for x in writes[first:]],
        **({"write_ms_median": round(statistics.median(writes[first:]), 1)} if alternate else {}),
        "published_ms": [round(x, 1) for x in published],
        "published_ms_median": round(statistics.median(published), 1),
        "builds": ready.get("builds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.leader_drain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flags", type=int, nargs="+", default=[10_000])
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout (its extension built), measured first")
    parser.add_argument("--baseline-python", type=Path, help="its Python (default: the running one)")
    parser.add_argument("--alternate", action="store_true", help="writes alternate between two standbys")
    ns = parser.parse_args()
    sides = {"this": THIS}
    if ns.baseline is not None:
        sides = {"baseline": Checkout(ns.baseline.resolve(), ns.baseline_python or THIS.python), **sides}
    server = PostgresServer(free_port())
    server.start()
    try:
        for n in ns.flags:
            with tempfile.TemporaryDirectory(prefix="leader-drain-") as tmp:
                template, auth, key = load(server, n, Path(tmp), next(iter(sides.values())))
                for side, checkout in sides.items():
                    result = measure(server, template, auth, key, checkout, Path(tmp) / side, ns.changes, ns.alternate)
                    print(json.dumps({"flags": n, "side": side, **result}), flush=True)
    finally:
        server.kill()


if __name__ == "__main__":
    main()
