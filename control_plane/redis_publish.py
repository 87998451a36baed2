"""Announces every LMDB publish on Redis, so ``sync`` on other hosts can apply the same change.

``RedisPublisher.publish(version, change)`` is called right after the LMDB write and never blocks on
Redis: it encodes the change set and queues it. A background thread stores each change set with its
version bump and announcement in one Lua script (see ``contract.redis_protocol``), in version order.
A second thread keeps ``flagedge:full`` (the complete state, read from LMDB) up to date. It is its
own thread because at 100,000 flags reading and encoding the whole state takes seconds: change sets
must not queue behind it. Both orders are safe in Redis: the full state and the announced version
are only ever raised, so a full state at M written after change set N > M leaves N announced, and
one written before change set M makes followers that hear M jump there through the full state.

The full state is rewritten ``full_interval`` seconds after a change, or later when it is costly
(at most :data:`FULL_SHARE` of the time goes to it), but always while the change sets above its
version are still retained (:class:`RedisRetention`: half its versions, bytes or seconds), so a
follower that misses a change set (or starts empty) can always recover from the full state plus
the change sets above it. While Redis is down the queue grows (bounded; on overflow it is dropped,
since the full state covers it) and the threads retry with backoff; when Redis is back the queue
is pushed and the full state rewritten, which also repairs a Redis that restarted empty. The full
state is also written on start, which covers versions a previous control-plane process never got
to announce.

Fenced (several control-plane replicas, ``fenced=True``): nothing is written until
:meth:`RedisPublisher.begin_term` gives the leadership epoch this process publishes under. Every
write carries it and Redis refuses it once a higher epoch has claimed (``contract.redis_protocol``):
then this publisher is :attr:`deposed`, drops what it queued and writes nothing more until a new
term begins. The claim also names the version Redis held when the term began; the term's first
publish must go above it as a full state (:meth:`take_restart`).
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lmdb
import redis

from contract.framing import CorruptValue, decode
from contract.redis_protocol import (
    BEHIND,
    CHANGE_SCRIPT,
    CLAIM_SCRIPT,
    DEFAULT_PREFIX,
    DEPOSED,
    FULL_SCRIPT,
    FullTables,
    RedisKeys,
    client,
    encode_change,
    encode_full,
    high_water,
    outcome,
    redact,
)
from contract.store import ChangeSet, SnapshotWriter
from control_plane.leadership import Deposed

log = logging.getLogger("control_plane.redis_publish")

FullStateSource = Callable[[], tuple[int, FullTables]]

#: The share of the full-state thread's time that periodic rewrites may take: one that cost C
#: seconds is repeated no sooner than C / FULL_SHARE later (the CPU it takes is the control plane's).
FULL_SHARE = 0.2

#: How long a full state read at version V waits for V's change set to reach Redis first, so that
#: followers apply that change as a change set rather than the (much larger) full state.
FULL_DEFER_SECONDS = 0.2


def full_state_from(writer: SnapshotWriter) -> tuple[int, FullTables]:
    """The complete decoded state of the writer's LMDB at one version (unreadable values left out)."""
    version, raw_tables = writer.read_all()
    tables: FullTables = {}
    for table, values in raw_tables.items():
        decoded: dict[str, dict[str, Any]] = {}
        for key, raw in values.items():
            try:
                value = decode(raw)
            except CorruptValue as e:
                log.warning("full state for Redis leaves out unreadable %s[%s]: %s", table, key, e)
                continue
            if isinstance(value, dict):
                decoded[key] = value
        tables[table] = decoded
    return version, tables


@dataclass(frozen=True)
class RedisRetention:
    """How many change sets Redis keeps for hosts catching up (the oldest go first).

    A host that misses a change set reads the full state instead, so these bound Redis's
    memory, not correctness: the publisher rewrites the full state before half of any bound is
    used by the change sets above it. The newest change set is always kept."""

    versions: int = 1000
    seconds: int = 3600
    bytes: int = 64 << 20


DEFAULT_RETENTION = RedisRetention()


class RedisPublisher:
    """Background, ordered, retrying distribution of snapshot versions to Redis."""

    def __init__(
        self,
        url: str,
        writer: SnapshotWriter | None = None,
        *,
        full_state: FullStateSource | None = None,
        prefix: str = DEFAULT_PREFIX,
        retention: RedisRetention = DEFAULT_RETENTION,
        full_interval: float = 5.0,
        max_pending: int = 10_000,
        max_pending_bytes: int = 256 << 20,
        batch_size: int = 100,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
        socket_timeout: float = 5.0,
        connect_timeout: float = 1.0,
        fenced: bool = False,
    ) -> None:
        if full_state is not None:
            self._full_state: FullStateSource = full_state
        elif writer is not None:
            self._full_state = functools.partial(full_state_from, writer)
        else:
            raise ValueError("RedisPublisher needs the SnapshotWriter or a full_state source")
        self._url = url
        self._keys = RedisKeys(prefix)
        self._retention = retention
        self._full_interval = full_interval
        self._max_pending = max(1, max_pending)
        self._max_pending_bytes = max(1, max_pending_bytes)
        self._batch_size = max(1, batch_size)
        self._min_backoff = min_backoff
        self._max_backoff = max(min_backoff, max_backoff)
        self._redis = client(
            url, name="flagedge-control-plane", socket_timeout=socket_timeout, connect_timeout=connect_timeout
        )
        self._change_script = self._redis.register_script(CHANGE_SCRIPT)
        self._full_script = self._redis.register_script(FULL_SCRIPT)
        self._claim_script = self._redis.register_script(CLAIM_SCRIPT)

        self._cond = threading.Condition()
        self._pending: deque[tuple[int, bytes, int | None]] = deque()  # version, blob, epoch
        self._pending_bytes = 0
        self._generation = 0  # bumped when the queue is dropped on overflow
        self._need_full = True  # on start: earlier processes may have left gaps
        self._enqueued = 0  # newest version handed to publish()
        self._pushed = 0  # newest version whose change set is in Redis
        self._full_version = -1  # version of the last full state written
        # Newest version published with no change set (``full_only``): change sets above it wait
        # until a full state at or above it is in Redis (see :meth:`_next_job`).
        self._full_only = 0
        self._last_full = float("-inf")
        self._full_cost = 0.0  # seconds the last full-state write took (read, encode, write)
        self._queued_bytes = 0  # every change set's bytes ever queued (monotonic)
        self._bytes_at_full = 0  # _queued_bytes when the last full state written was read
        self._closing = False
        self._close_deadline = float("inf")
        self._down_since: float | None = None
        self._overflowing = False
        self._ahead = 0  # newest version Redis announced above this publisher's
        # Fencing (module docstring). Unfenced: every write goes out without an epoch.
        self._fenced = fenced
        self._epoch: int | None = None  # the term this process publishes under
        self._claimed = not fenced  # the term's claim is in Redis
        self.deposed = False  # Redis refused this term: a higher epoch publishes now
        self._restart: int | None = None  # the version a term's first publish must go above
        self._thread = threading.Thread(target=self._run, name="redis-publisher", daemon=True)
        self._full_thread = threading.Thread(target=self._run_full, name="redis-publisher-full", daemon=True)
        self._thread.start()
        self._full_thread.start()

    # -- API -------------------------------------------------------------------------------------

    def publish(self, version: int, change: ChangeSet, *, full_only: bool = False) -> None:
        """Queue the change set that produced ``version`` in LMDB. Never blocks on Redis.

        Call it after the LMDB write, in version order (inside the publisher's lock).
        ``full_only``: ``change`` was computed against a state other hosts may not hold (a
        restored data dir continuing above Redis's versions), so no change set is stored for
        ``version``; followers find the gap and apply the full state, written next, instead.
        """
        if full_only:
            with self._cond:
                if not self._closing and not self._silenced():
                    self._enqueued = max(self._enqueued, version)
                    self._full_only = max(self._full_only, version)
                    self._need_full = True
                    self._cond.notify_all()
            return
        blob = encode_change(version, change)
        with self._cond:
            if self._closing or self._silenced():
                return
            if self._pending and (
                len(self._pending) >= self._max_pending or self._pending_bytes + len(blob) > self._max_pending_bytes
            ):
                if not self._overflowing:
                    log.warning(
                        "Redis publish queue full (%d change sets); dropping it, the full state will be resent",
                        len(self._pending),
                    )
                self._overflowing = True
                self._pending.clear()
                self._pending_bytes = 0
                self._generation += 1
                self._need_full = True
            self._pending.append((version, blob, self._epoch))
            self._pending_bytes += len(blob)
            self._queued_bytes += len(blob)
            self._enqueued = max(self._enqueued, version)
            self._cond.notify_all()

    def begin_term(self, epoch: int) -> int | None:
        """Publish under leadership ``epoch`` from now on (fenced). Claims it in Redis now: from
        then on Redis refuses every lower epoch. Returns the version this term must publish above
        (as a full state), or None when Redis could not be reached: then the thread claims before
        anything else, and :meth:`take_restart` tells the version once it has. Raises
        :class:`Deposed` if a higher epoch claimed already."""
        with self._cond:
            # What an earlier term of this process queued was computed in that term: not sent.
            self._drop_pending()
            # Claimed right here (not by the thread) unless Redis cannot be reached now.
            self._epoch, self._claimed, self.deposed, self._restart = epoch, True, False, None
            self._enqueued = self._full_version = self._ahead = self._full_only = 0
            self._need_full = False  # the term's first publish asks for the full state
            self._cond.notify_all()
        try:
            since = self._claim(epoch)
        except (redis.RedisError, OSError) as e:
            log.warning("could not claim epoch %d in Redis (%s); claiming it before anything else is sent", epoch, e)
            with self._cond:
                if self._epoch == epoch:
                    self._claimed = False  # the thread claims it, before anything else
                    self._cond.notify_all()
            return None
        return since

    def take_restart(self) -> int | None:
        """The version above which this term must publish again as a full state (a claim made
        late, or a write Redis refused as behind), once; None when there is none."""
        with self._cond:
            restart, self._restart = self._restart, None
            return restart

    def high_water(self) -> int:
        """Read now (blocking, may raise redis errors) the newest version Redis has seen."""
        return high_water(self._redis, self._keys)

    def ahead(self) -> int:
        """The version Redis announced above everything this publisher sent (0: none)."""
        with self._cond:
            return self._ahead if self._ahead > max(self._enqueued, self._full_version) else 0

    def resync(self) -> None:
        """Rewrite the full state in Redis as soon as possible (e.g. after an operator flushed Redis)."""
        with self._cond:
            self._need_full = True
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0, *, full: bool = False) -> bool:
        """Wait until every queued change set is in Redis (with ``full``, also the full state at the
        newest version). False if that did not happen within ``timeout`` seconds."""
        with self._cond:
            if full and self._full_version < self._enqueued:
                self._need_full = True
                self._cond.notify_all()

            def done() -> bool:
                caught_up = not self._pending and self._pushed >= self._enqueued
                return caught_up and (not full or (not self._need_full and self._full_version >= self._enqueued))

            return self._cond.wait_for(done, timeout)

    def status(self) -> dict[str, Any]:
        """For readiness and metrics: is Redis reachable, how much is queued, what it has."""
        with self._cond:
            return {
                "redis_connected": self._down_since is None,
                "pending": len(self._pending),
                "pending_bytes": self._pending_bytes,
                "published_version": self._enqueued,
                "redis_version": self._pushed,
                "full_version": self._full_version,
                "redis_ahead": self._ahead if self._ahead > max(self._enqueued, self._full_version) else 0,
                "epoch": self._epoch,
                "deposed": self.deposed,
            }

    def close(self, timeout: float = 2.0) -> None:
        """Try for up to ``timeout`` seconds to push what is queued, then stop the thread.

        Close it before the SnapshotWriter: the thread reads the full state from it.
        """
        with self._cond:
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            self._cond.notify_all()
        deadline = time.monotonic() + timeout + 1.0
        self._thread.join(timeout + 1.0)
        # Not after a full state it is still reading: a daemon, its write is redone on the next start.
        self._full_thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            if self._pending:
                log.warning(
                    "closing with %d change set(s) not in Redis; the next start resends the full state",
                    len(self._pending),
                )
        self._redis.close()

    # -- background threads -----------------------------------------------------------------------

    def _full_wait(self) -> float | None:
        """Under the lock: seconds until the full state is due (<= 0: now); None if it is up to date.

        Periodically ``full_interval`` after it was last written, or ``cost / FULL_SHARE`` when
        longer; and early enough that the change sets above it are still retained when it lands:
        before half the retention's versions, bytes or seconds are used."""
        if self._need_full:
            return 0.0
        if self._full_version >= self._enqueued:
            return None
        retention = self._retention
        if self._enqueued - max(self._full_version, 0) >= max(
            1, retention.versions // 2
        ) or self._queued_bytes - self._bytes_at_full >= max(1, retention.bytes // 2):
            return 0.0
        interval = min(max(self._full_interval, self._full_cost / FULL_SHARE), max(1, retention.seconds) / 2)
        return self._last_full + interval - time.monotonic()

    def _writable(self) -> bool:
        """Under the lock: a write may go out now (unfenced, or a term claimed and not deposed)."""
        return not self._silenced() and self._claimed

    def _full_state_owed(self) -> bool:
        """Under the lock: a version published ``full_only`` is above the last full state written."""
        return self._full_only > self._full_version

    def _sendable(self) -> int:
        """Under the lock: how many queued change sets may go out before the full state does.

        A version published ``full_only`` has no change set, so a follower below it can only
        cross it through a full state at or above it. Were the change sets above it stored
        first, every follower would hear of them, find the gap and wait for that full state
        anyway, and a follower that read the full state later would skip the version: they wait
        here instead, so each host passes through every version in order. Rare: a restored data
        dir's first publish or a term's; the periodic full state bars nothing."""
        if not self._full_state_owed():
            return len(self._pending)
        return sum(1 for version, _, _ in self._pending if version <= self._full_only)

    def _next_job(self) -> tuple[list[tuple[int, bytes, int | None]], int, bool] | None:
        """Under the lock: the change-set thread's next batch of change sets, or (True) the claim
        of a term (fenced); None to stop."""
        while True:
            now = time.monotonic()
            if self._closing and (not self._pending or now >= self._close_deadline):
                return None
            if self._fenced and (self._epoch is None or self.deposed):
                if self._closing:
                    return None
                self._cond.wait()  # a standby, or deposed: nothing to write until a term begins
                continue
            if not self._claimed:
                return [], self._generation, True
            ready = min(self._sendable(), self._batch_size)
            if ready:
                return list(itertools.islice(self._pending, ready)), self._generation, False
            if self._closing and not self._pending:
                return None
            # Nothing queued, or what is queued waits for the full state (woken when it is written).
            self._cond.wait(max(0.0, self._close_deadline - now) if self._closing else None)

    def _next_full(self) -> bool | None:
        """Under the lock: the full-state thread's next write, True if forced; None to stop."""
        while not self._closing:
            wait = self._full_wait() if self._writable() else None
            if wait is not None and wait <= 0:
                forced = self._need_full
                self._need_full = False
                return forced
            self._cond.wait(wait)
        return None

    def _run(self) -> None:
        backoff = self._min_backoff
        while True:
            with self._cond:
                job = self._next_job()
            if job is None:
                return
            batch, generation, claim = job
            try:
                if claim:
                    self._claim_late()
                else:
                    self._push(batch, generation)
            except Exception as e:  # Redis down, or anything else: never let the thread die
                self._failed(e, backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = self._min_backoff
            self._reached()

    def _run_full(self) -> None:
        backoff = self._min_backoff
        while True:
            with self._cond:
                forced = self._next_full()
            if forced is None:
                return
            try:
                self._write_full(forced=forced)
            except Exception as e:  # as in _run
                self._failed(e, backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = self._min_backoff
            self._reached()

    def _failed(self, e: Exception, backoff: float) -> None:
        """Either thread's write failed: note Redis as down, have the full state resent, back off."""
        if not isinstance(e, (redis.RedisError, OSError, lmdb.Error)):
            log.exception("unexpected error publishing to Redis")
        with self._cond:
            self._need_full = True
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning(
                    "publishing to Redis at %s failed (%s); queueing change sets and retrying", redact(self._url), e
                )
            # Sleep out the backoff whatever wakes the condition: the other thread failing too
            # must not wake this one (the two would retry each other in a loop while Redis is down).
            end = min(time.monotonic() + backoff, self._close_deadline)
            self._cond.wait_for(lambda: time.monotonic() >= end, max(0.0, end - time.monotonic()))

    def _reached(self) -> None:
        """Either thread's write succeeded: once the full state is resent too, Redis is back."""
        with self._cond:
            if self._down_since is not None and not self._need_full:
                log.info(
                    "Redis at %s reachable again after %.1fs; queued change sets and full state sent",
                    redact(self._url),
                    time.monotonic() - self._down_since,
                )
                self._down_since = None

    def _push(self, batch: list[tuple[int, bytes, int | None]], generation: int) -> None:
        keys = self._keys
        pipe = self._redis.pipeline(transaction=False)
        for version, blob, epoch in batch:
            self._change_script(
                keys=[keys.term, keys.version, keys.full, keys.index, keys.change(version), keys.sizes],
                args=[
                    version,
                    "" if epoch is None else epoch,
                    blob,
                    max(1, self._retention.seconds),
                    max(1, self._retention.versions),
                    keys.change_prefix,
                    keys.channel,
                    max(0, self._retention.bytes),
                ],
                client=pipe,
            )
        results = [outcome(r) for r in pipe.execute()]
        announced = max(version for _, version in results)
        with self._cond:
            refusals = [(status, entry[2]) for (status, _), entry in zip(results, batch, strict=True) if status]
            if refusals:
                self._refused(refusals[0][0], refusals[0][1], announced)
                self._cond.notify_all()
                return
            if generation == self._generation:
                for _ in batch:
                    self._pending_bytes -= len(self._pending.popleft()[1])
            if not self._pending:
                self._overflowing = False
            self._pushed = max(self._pushed, batch[-1][0])
            self._warn_if_ahead(announced)
            self._cond.notify_all()

    def _write_full(self, *, forced: bool) -> None:
        """Read, encode and write the full state (the full-state thread, beside the change sets)."""
        started = time.monotonic()
        if self._down_since is not None:
            self._redis.ping()  # cheap probe before reading and encoding the whole state again
        with self._cond:
            # Taken before the read: a state read in one term is never written under the next.
            epoch = self._epoch
            queued_bytes = self._queued_bytes
        version, tables = self._full_state()
        with self._cond:
            # A publish() is probably on its way, or its change set in flight: let it reach Redis
            # first (the change-set thread does not wait for this one), so that followers apply it
            # as a change rather than as the full state. Bounded: correct in either order. Not when
            # change sets wait for this full state (a version with none): that would only delay both.
            if not self._full_state_owed():
                self._cond.wait_for(lambda: self._pushed >= version or self._closing, FULL_DEFER_SECONDS)
        if version == 0:  # nothing published yet
            with self._cond:
                self._full_version = max(self._full_version, 0)
                self._last_full = time.monotonic()
                self._cond.notify_all()
            return
        blob = encode_full(version, tables)
        del tables
        status, announced = outcome(
            self._full_script(
                keys=[self._keys.term, self._keys.version, self._keys.full],
                args=[version, "" if epoch is None else epoch, blob, self._keys.channel],
            )
        )
        with self._cond:
            if status:
                self._refused(status, epoch, announced)
                return
            if epoch != self._epoch:
                return  # a new term began meanwhile (begin_term reset what it tracks): not its state
            self._full_version = max(self._full_version, version)
            self._pushed = max(self._pushed, version)
            self._last_full = time.monotonic()
            self._full_cost = self._last_full - started
            self._bytes_at_full = max(self._bytes_at_full, queued_bytes)
            self._warn_if_ahead(announced)
            self._cond.notify_all()
        log.debug("full state at version %d written to Redis (%d bytes, %.2fs)", version, len(blob), self._full_cost)

    def _warn_if_ahead(self, announced: int) -> None:
        mine = max(self._enqueued, self._full_version)
        if announced > mine and announced > self._ahead:
            self._ahead = announced  # the Publisher continues above it with its next publish
            log.warning(
                "Redis announces version %d, newer than this control plane's %d: sync hosts ignore versions up "
                "to %d (was the data directory replaced?)",
                announced,
                mine,
                announced,
            )

    # -- fencing ----------------------------------------------------------------------------------

    def _silenced(self) -> bool:
        """Under the lock: fenced and without a term to write under (standby, or deposed)."""
        return self._fenced and (self._epoch is None or self.deposed)

    def _drop_pending(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0
        self._generation += 1

    def _claim(self, epoch: int) -> int:
        """Claim ``epoch`` in Redis; the version the term must publish above."""
        keys = self._keys
        status, since = outcome(self._claim_script(keys=[keys.term, keys.version, keys.full], args=[epoch]))
        with self._cond:
            if status == DEPOSED:
                self._refused(DEPOSED, epoch, 0)
                raise Deposed(f"Redis holds leadership epoch {since}, above {epoch}", since)
            if self._epoch == epoch:
                self._claimed = True
                self._cond.notify_all()
        log.info("publishing to Redis under leadership epoch %d, above version %d", epoch, since)
        return since

    def _claim_late(self) -> None:
        """The thread's claim of a term Redis could not be told of when it began: what was queued
        meanwhile is dropped, and the term publishes again above what Redis holds."""
        with self._cond:
            epoch = self._epoch
        if epoch is None:
            return
        try:
            since = self._claim(epoch)
        except Deposed:
            return
        with self._cond:
            if self._epoch == epoch:
                self._drop_pending()
                self._restart = since
                self._cond.notify_all()

    def _refused(self, status: int, epoch: int | None, announced: int) -> None:
        """Under the lock: Redis refused a write of ``epoch`` (DEPOSED or BEHIND)."""
        if epoch != self._epoch:
            return  # written under an earlier term of this process: that term is over anyway
        self._drop_pending()
        if status == DEPOSED:
            if not self.deposed:
                log.error(
                    "Redis refused leadership epoch %s: another control plane publishes under a higher epoch; "
                    "this one writes nothing more to Redis until it leads again",
                    epoch,
                )
            self.deposed = True
        elif status == BEHIND:
            # Versions at or below where this term began belong to an older term: go above them.
            log.warning("Redis refused version(s) at or below %d for epoch %s; publishing above it", announced, epoch)
            self._restart = max(self._restart or 0, announced)
