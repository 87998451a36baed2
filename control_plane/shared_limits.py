"""The control plane's rate limits and login budgets kept in PostgreSQL, so that several replicas
behind a load balancer share them (a client cannot multiply its budget by the number of replicas,
and a login backoff earned on one replica holds on the others).

Same rules as :mod:`control_plane.ratelimit` (which keeps them in the single SQLite process's
memory); only where the state lives differs. Times are wall-clock seconds (replicas on several
hosts share no monotonic clock). Each check is one short transaction that does not take the
store's write lock: concurrent checks of one key serialize on its rows (token buckets, locked in
key order so two checks never deadlock) or on a transaction-level advisory lock on the key
(sliding windows).
"""

from __future__ import annotations

import math
import time

from contract.ratelimit import TokenBuckets
from control_plane.dialect import Connection
from control_plane.ratelimit import KeyLimits, LoginGuard, too_many
from control_plane.store import Store

# Rows of a window older than this are deleted when the key is next seen.
_KEEP = 3600.0


class SharedKeyLimits(KeyLimits):
    """:class:`KeyLimits` with its token buckets in the ``rate_buckets`` table."""

    def __init__(
        self, store: Store, per_key: float, per_key_burst: float, per_address: float, per_address_burst: float
    ) -> None:
        super().__init__(per_key, per_key_burst, per_address, per_address_burst)
        self.store = store

    def check(self, key_id: str, address: str) -> None:
        limits = [
            (limiter, key)
            for limiter, key in ((self.per_key, key_id), (self.per_address, f"{key_id} {address}"))
            if limiter.enabled
        ]
        if not limits:
            return
        now = time.time()
        worst: tuple[float, TokenBuckets] | None = None
        with self.store.transaction(serialized=False) as db:
            state: list[tuple[TokenBuckets, str, float]] = []
            for limiter, key in sorted(limits, key=lambda lk: (lk[0].name, lk[1])):
                tokens = _bucket(db, limiter, key, now)
                state.append((limiter, key, tokens))
                if tokens < 1.0:
                    wait = (1.0 - tokens) / limiter.rate
                    if worst is None or wait > worst[0]:
                        worst = (wait, limiter)
            if worst is None:  # all or nothing, as contract.ratelimit.take_all
                for limiter, key, tokens in state:
                    db.execute(
                        "UPDATE rate_buckets SET tokens = ?, at = ? WHERE limiter = ? AND key = ?",
                        (tokens - 1.0, now, limiter.name, key),
                    )
        if worst is not None:
            raise too_many(max(1, math.ceil(worst[0])), f"rate limit reached for this {worst[1].name}")


def _bucket(db: Connection, limiter: TokenBuckets, key: str, now: float) -> float:
    """The tokens ``key``'s bucket holds now (a new key's bucket is full); the row stays locked."""
    db.execute(
        "INSERT INTO rate_buckets (limiter, key, tokens, at) VALUES (?, ?, ?, ?) ON CONFLICT (limiter, key) DO NOTHING",
        (limiter.name, key, limiter.burst, now),
    )
    row = db.execute(
        "SELECT tokens, at FROM rate_buckets WHERE limiter = ? AND key = ? FOR UPDATE", (limiter.name, key)
    ).fetchone()
    return float(min(limiter.burst, row["tokens"] + max(0.0, now - row["at"]) * limiter.rate))


class SharedLoginGuard(LoginGuard):
    """:class:`LoginGuard` with its windows in ``login_hits`` and backoffs in ``login_backoff``."""

    def __init__(self, store: Store, per_minute: int) -> None:
        super().__init__(per_minute)
        self.store = store

    def check(self, account: str, address: str) -> None:
        now = time.time()
        with self.store.transaction(serialized=False) as db:
            pair = db.execute(
                "SELECT locked_until FROM login_backoff WHERE account = ? AND address = ?", (account, address)
            ).fetchone()
            if pair is not None and now < pair["locked_until"]:
                raise too_many(pair["locked_until"] - now)
            key = f"client:{address}"
            hits = _window(db, "address", key, now, self.addresses.window)
            if len(hits) >= self.addresses.limit:
                raise too_many(self.addresses.window - (now - hits[0]))
            db.execute("INSERT INTO login_hits (kind, key, at) VALUES ('address', ?, ?)", (key, now))

    def failed(self, account: str, address: str) -> None:
        now = time.time()
        with self.store.transaction(serialized=False) as db:
            recent = _window(db, "account", account, now, self.alarm_window)
            db.execute("INSERT INTO login_hits (kind, key, at) VALUES ('account', ?, ?)", (account, now))
            row = db.execute(
                "SELECT failures, last FROM login_backoff WHERE account = ? AND address = ? FOR UPDATE",
                (account, address),
            ).fetchone()
            failures = 1 if row is None or now - row["last"] > self.forget_after else int(row["failures"]) + 1
            free = 0 if len(recent) + 1 >= self.alarm_failures else self.free_failures
            locked = now + min(self.max_backoff, 2.0 ** min(failures - free - 1, 30)) if failures > free else 0.0
            db.execute(
                "INSERT INTO login_backoff (account, address, failures, last, locked_until) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (account, address) DO UPDATE SET failures = excluded.failures, last = excluded.last,"
                " locked_until = excluded.locked_until",
                (account, address, failures, now, locked),
            )

    def succeeded(self, account: str, address: str) -> None:
        with self.store.transaction(serialized=False) as db:
            db.execute("DELETE FROM login_backoff WHERE account = ? AND address = ?", (account, address))


def _window(db: Connection, kind: str, key: str, now: float, window: float) -> list[float]:
    """The times of ``key``'s hits within ``window`` seconds, oldest first, the key locked for the
    transaction (two replicas counting the same key wait for each other); older hits go."""
    db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"{kind}:{key}",))
    db.execute("DELETE FROM login_hits WHERE kind = ? AND key = ? AND at < ?", (kind, key, now - max(window, _KEEP)))
    rows = db.execute(
        "SELECT at FROM login_hits WHERE kind = ? AND key = ? AND at > ? ORDER BY at", (kind, key, now - window)
    ).fetchall()
    return [float(r["at"]) for r in rows]
