"""Webhook outbox claims: deliverers on one database (replicas sharing PostgreSQL, or two
processes on one SQLite file) never take the same row while its lease holds."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path

from control_plane.key_vault import KeyVault
from control_plane.store import Store, new_id, now_iso
from control_plane.webhook_delivery import Deliverer, DeliveryPolicy

ROWS = 120
DELIVERERS = 4


def _outbox(store: Store) -> set[str]:
    now = now_iso()
    ids = {new_id() for _ in range(ROWS)}
    with store.transaction() as db:
        db.execute(
            "INSERT INTO users (id, name, email, password_hash, created_at) VALUES ('u', 'u', 'u@x', '-', ?)", (now,)
        )
        db.execute("INSERT INTO organisations (id, name, created_by, created_at) VALUES ('o', 'o', 'u', ?)", (now,))
        db.execute(
            "INSERT INTO projects (id, organisation_id, key, name, created_at, updated_at)"
            " VALUES ('p', 'o', 'p', 'p', ?, ?)",
            (now, now),
        )
        db.execute(
            "INSERT INTO webhooks (id, project_id, name, url, events, secret, created_at, updated_at)"
            " VALUES ('w', 'p', 'w', 'http://receiver.invalid/', '[]', 's', ?, ?)",
            (now, now),
        )
        db.executemany(
            "INSERT INTO webhook_outbox (id, webhook_id, project_id, events, payload, next_attempt_at, created_at)"
            " VALUES (?, 'w', 'p', 'x', '{}', ?, ?)",
            [(i, now, now) for i in ids],
        )
    return ids


def test_concurrent_deliverers_claim_each_row_once(tmp_path: Path, database_url: str | None) -> None:
    database = database_url or tmp_path / "control.db"
    stores = [Store(database) for _ in range(2)]  # as two replicas: a connection (pool) each
    ids = _outbox(stores[0])
    vault = KeyVault("a key-encryption secret for the test")
    deliverers = [Deliverer(stores[i % 2], DeliveryPolicy(timeout=60), vault) for i in range(DELIVERERS)]
    claims: list[list[str]] = [[] for _ in deliverers]
    start = threading.Barrier(len(deliverers))

    def claim(n: int) -> None:
        start.wait()
        while rows := deliverers[n]._claim():
            claims[n].extend(r["id"] for r in rows)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(deliverers))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        taken = Counter(i for c in claims for i in c)
        assert set(taken) == ids
        assert [i for i, times in taken.items() if times > 1] == []
        # While the lease holds nobody takes a row again; every row counts one attempt.
        assert deliverers[0]._claim() == []
        attempts = stores[1].all("SELECT attempts, claimed_until FROM webhook_outbox")
        assert {r["attempts"] for r in attempts} == {1} and all(r["claimed_until"] > now_iso() for r in attempts)
    finally:
        for d in deliverers:
            asyncio.run(d.close())
        for s in stores:
            s.close()
