"""The control plane's rate limits and login budgets kept in PostgreSQL, so that several replicas
behind a load balancer share them (a client cannot multiply its budget by the number of replicas,
and a login backoff earned on one replica holds on the others).

Same rules as :mod:`control_plane.ratelimit` (which keeps them in the single SQLite process's
memory); only where the state lives differs. Times are wall-clock seconds (replicas on several
hosts share no monotonic clock). Each check is one short transaction that does not take the
store's write lock: concurrent checks of one key serialize on its rows (token buckets, locked in
key order so two checks never deadlock) or on a transaction-level advisory lock on the key
(sliding windows).

Token buckets are pruned as they go: a bucket that has refilled is the same as no row (a new key
starts full), so every :data:`PRUNE_EVERY` seconds a check of each replica also deletes up to
:data:`PRUNE_BATCH` full buckets (more at once while there are more). Rows of a limiter turned off
on this replica go once idle for :data:`_KEEP`. See :meth:`SharedKeyLimits.prune` for why that is
safe next to the checks of every replica. The login tables are pruned the same way
(:meth:`SharedLoginGuard.prune`): hits older than every window, and backoffs that have expired and
been forgotten, which both count as no row; otherwise every address that ever tried a login (or a
scan of many addresses) would stay in them for good.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from contract.ratelimit import TokenBuckets
from control_plane.dialect import DATABASE_ERRORS, Connection, skip_locked
from control_plane.ratelimit import KeyLimits, LoginGuard, too_many
from control_plane.store import Store

log = logging.getLogger("control_plane.shared_limits")

# Rows of a window older than this are deleted when the key is next seen.
_KEEP = 3600.0
# How often a replica prunes full token buckets, and at most how many rows one prune deletes (one
# short statement on the request path; a full batch makes the next check prune again).
PRUNE_EVERY = 60.0
PRUNE_BATCH = 1000


class BatchPruner:
    """Runs ``prune(now)`` (which deletes at most ``batch`` rows and returns how many) on the
    request path every ``every`` seconds, by one thread of the replica at a time; a full batch
    means more are waiting, so the next request prunes again at once. A failure is logged, never
    the request's (its check is done; the next prune tries again)."""

    def __init__(self, prune: Callable[[float], int], tables: str, every: float, batch: int) -> None:
        self._prune = prune
        self._tables = tables
        self.every = every
        self.batch = batch
        self._next = 0.0
        self._lock = threading.Lock()

    def when_due(self, now: float) -> None:
        if now < self._next or not self._lock.acquire(blocking=False):
            return
        try:
            full = self._prune(now) >= self.batch
            self._next = now if full else now + self.every
        except DATABASE_ERRORS:
            log.exception("pruning %s failed; trying again in %.0f s", self._tables, self.every)
            self._next = now + self.every
        finally:
            self._lock.release()


class SharedKeyLimits(KeyLimits):
    """:class:`KeyLimits` with its token buckets in the ``rate_buckets`` table."""

    def __init__(
        self,
        store: Store,
        per_key: float,
        per_key_burst: float,
        per_address: float,
        per_address_burst: float,
        *,
        prune_every: float = PRUNE_EVERY,
        prune_batch: int = PRUNE_BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(per_key, per_key_burst, per_address, per_address_burst)
        self.store = store
        self.prune_batch = prune_batch
        self.clock = clock
        self._pruner = BatchPruner(self.prune, "rate_buckets", prune_every, prune_batch)

    def check(self, key_id: str, address: str) -> None:
        limits = [
            (limiter, key)
            for limiter, key in ((self.per_key, key_id), (self.per_address, f"{key_id} {address}"))
            if limiter.enabled
        ]
        if not limits:
            return
        now = self.clock()
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
        self._pruner.when_due(now)
        if worst is not None:
            raise too_many(max(1, math.ceil(worst[0])), f"rate limit reached for this {worst[1].name}")

    def prune(self, now: float) -> int:
        """Delete up to ``prune_batch`` buckets that are full at ``now`` (a missing row is a full
        bucket, so no limit changes); the number deleted.

        Safe with any number of replicas pruning and checking at once: the rows are claimed with
        ``SKIP LOCKED``, so a prune never waits for a bucket a check holds (nor for another
        prune's rows) and cannot deadlock with them; a check that meets a row being deleted waits
        for the delete and then starts a new, full bucket, which that row was anyway."""
        deleted = 0
        claim = skip_locked(self.store.postgresql)
        with self.store.transaction(serialized=False) as db:
            for limiter in (self.per_key, self.per_address):
                left = self.prune_batch - deleted
                if left <= 0:
                    break
                params: tuple[float, ...]
                if limiter.enabled:
                    # Full once the tokens it lacked have flowed back: at + (burst - tokens) / rate.
                    expired, params = "at + (? - tokens) / ? <= ?", (limiter.burst, limiter.rate, now)
                else:  # turned off here: another replica may still run it, so only long-idle rows go
                    expired, params = "at <= ?", (now - _KEEP,)
                cursor = db.execute(
                    "DELETE FROM rate_buckets WHERE (limiter, key) IN (SELECT limiter, key FROM rate_buckets"
                    f" WHERE limiter = ? AND {expired} LIMIT ?{claim})",
                    (limiter.name, *params, left),
                )
                deleted += max(0, cursor.rowcount)
        return deleted


def _bucket(db: Connection, limiter: TokenBuckets, key: str, now: float) -> float:
    """The tokens ``key``'s bucket holds now (a new key's bucket is full); the row stays locked.

    One upsert that locks the row whether it was there or not: an insert that did nothing followed
    by a ``SELECT … FOR UPDATE`` would find no row when a prune deleted it in between."""
    row = db.execute(
        "INSERT INTO rate_buckets (limiter, key, tokens, at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (limiter, key) DO UPDATE SET at = rate_buckets.at RETURNING tokens, at",
        (limiter.name, key, limiter.burst, now),
    ).fetchone()
    return float(min(limiter.burst, row["tokens"] + max(0.0, now - row["at"]) * limiter.rate))


class SharedLoginGuard(LoginGuard):
    """:class:`LoginGuard` with its windows in ``login_hits`` and backoffs in ``login_backoff``."""

    def __init__(
        self,
        store: Store,
        per_minute: int,
        *,
        prune_every: float = PRUNE_EVERY,
        prune_batch: int = PRUNE_BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(per_minute)
        self.store = store
        self.prune_batch = prune_batch
        self.clock = clock
        self._pruner = BatchPruner(self.prune, "login_hits and login_backoff", prune_every, prune_batch)

    def check(self, account: str, address: str) -> None:
        now = self.clock()
        self._pruner.when_due(now)
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
        now = self.clock()
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

    def prune(self, now: float) -> int:
        """Delete up to ``prune_batch`` rows that count as no row at ``now``; the number deleted.

        A hit older than every window is never counted again (:func:`_window` deletes a key's own
        as it reads them). A backoff whose lock has expired and whose last failure is older than
        ``forget_after`` is what no row is: the next failure starts again at one. Rows are
        claimed with ``SKIP LOCKED``, so a prune never waits for a row a login holds; a login
        that meets a row being deleted waits, then finds none, which is what the row meant."""
        claim = skip_locked(self.store.postgresql)
        keep = max(_KEEP, self.addresses.window, self.alarm_window)
        with self.store.transaction(serialized=False) as db:
            cursor = db.execute(
                "DELETE FROM login_backoff WHERE (account, address) IN (SELECT account, address FROM login_backoff"
                f" WHERE last < ? AND locked_until <= ? LIMIT ?{claim})",
                (now - self.forget_after, now, self.prune_batch),
            )
            deleted = max(0, cursor.rowcount)
            if deleted < self.prune_batch:
                # No key of its own: rows equal in every column are interchangeable (all expired).
                cursor = db.execute(
                    "DELETE FROM login_hits WHERE (kind, key, at) IN (SELECT kind, key, at FROM login_hits"
                    f" WHERE at < ? LIMIT ?{claim})",
                    (now - keep, self.prune_batch - deleted),
                )
                deleted += max(0, cursor.rowcount)
        return deleted


def _window(db: Connection, kind: str, key: str, now: float, window: float) -> list[float]:
    """The times of ``key``'s hits within ``window`` seconds, oldest first, the key locked for the
    transaction (two replicas counting the same key wait for each other); older hits go."""
    db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"{kind}:{key}",))
    db.execute("DELETE FROM login_hits WHERE kind = ? AND key = ? AND at < ?", (kind, key, now - max(window, _KEEP)))
    rows = db.execute(
        "SELECT at FROM login_hits WHERE kind = ? AND key = ? AND at > ? ORDER BY at", (kind, key, now - window)
    ).fetchall()
    return [float(r["at"]) for r in rows]
