"""``python -m server sync``: follow Redis and apply snapshot versions to this host's LMDB.

The process subscribes to ``flagedge:versions`` and, on every announcement, on (re)connect and every
``reconcile_interval`` seconds (pub/sub drops messages while disconnected), compares
``flagedge:version`` with the local version and catches up: change set N+1, N+2, ... each applied in
its own LMDB transaction under its own version, strictly in order (a change set is a delta: a
one-flag change carries that flag, and the LMDB writer logs what it wrote, so the edge workers
read and recompile only that; ``server.delta``). When a change set is missing
(expired, lost with a Redis restart) or unreadable, it applies the full state instead, if that is
newer than what it has; otherwise it waits for the control plane to write a newer one. It never goes
backwards, never writes a value that fails its checksum, and keeps serving (the edge keeps reading)
its last good version while Redis is away; it reconnects with backoff and does not exit on errors.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from contract.framing import CorruptValue, decode
from contract.lifecycle import DataDirLock
from contract.redis_protocol import DEFAULT_PREFIX, FullTables, RedisKeys, client, decode_change, decode_full, redact
from contract.store import ChangeSet, SnapshotWriter, snapshot_dir, unstamped
from contract.store_recovery import recover_damaged_store

log = logging.getLogger("server.sync")

#: Called after each applied version with ("change" | "full").
ApplyHook = Callable[[int, str], None]


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


class Sync:
    """The single LMDB writer of an edge host that is fed from Redis."""

    def __init__(
        self,
        data_dir: Path,
        redis_url: str,
        *,
        reconcile_interval: float = 2.0,
        prefix: str = DEFAULT_PREFIX,
        batch_size: int = 32,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        on_apply: ApplyHook | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.reconcile_interval = max(0.01, reconcile_interval)
        self.keys = RedisKeys(prefix)
        self.batch_size = max(1, batch_size)
        self.min_backoff = min_backoff
        self.max_backoff = max(min_backoff, max_backoff)
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self.on_apply = on_apply
        client(redis_url, name="flagedge-sync", socket_timeout=1, connect_timeout=1).close()  # bad URL: fail now
        # The only writer of this LMDB: a second sync (or a control plane) on the same data dir
        # would interleave versions from two pictures of it.
        data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = DataDirLock(data_dir)
        try:
            # A damaged store (truncated, unreadable pages) is moved aside; Redis's full state
            # rebuilds it. Edges keep serving their last good snapshot until then.
            recover_damaged_store(data_dir)
            self.writer = SnapshotWriter(data_dir)
        except BaseException:
            self.lock.release()
            raise
        self._problem: str | None = None
        self._down = False

    def version(self) -> int:
        return self.writer.version()

    def close(self) -> None:
        self.writer.close()
        self.lock.release()

    # -- main loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        log.info(
            "sync serving snapshot version %d from %s, following Redis at %s",
            self.version(),
            snapshot_dir(self.data_dir),
            redact(self.redis_url),
        )
        backoff = self.min_backoff
        while not stop.is_set():
            conn = client(
                self.redis_url,
                name="flagedge-sync",
                socket_timeout=self.socket_timeout,
                connect_timeout=self.connect_timeout,
            )
            pubsub = redis.client.PubSub(conn.connection_pool)
            try:
                self._subscribe(pubsub)
                self._reconcile(conn, stop)
                if self._down:
                    log.info("Redis at %s is back; serving version %d", redact(self.redis_url), self.version())
                    self._down = False
                backoff = self.min_backoff
                self._follow(conn, pubsub, stop)
            except (redis.RedisError, OSError) as e:
                if not self._down:
                    log.warning(
                        "Redis at %s unavailable (%s); still serving version %d, reconnecting",
                        redact(self.redis_url),
                        e,
                        self.version(),
                    )
                    self._down = True
            except Exception as e:  # never exit: the edge keeps serving what it has
                self._report(f"sync step failed: {e!r}", logging.ERROR, exc_info=True)
            finally:
                try:
                    pubsub.close()
                    conn.close()
                except Exception:
                    pass
            if stop.wait(backoff * (0.5 + random.random())):
                break
            backoff = min(backoff * 2, self.max_backoff)

    def _subscribe(self, pubsub: redis.client.PubSub) -> None:
        """Subscribe and wait for the confirmation, so no announcement after the next reconcile is lost."""
        pubsub.subscribe(self.keys.channel)
        deadline = time.monotonic() + self.socket_timeout
        while True:
            msg = pubsub.get_message(timeout=0.1)
            if msg is not None and msg.get("type") == "subscribe":
                return
            if time.monotonic() > deadline:
                raise redis.TimeoutError("no subscribe confirmation")

    def _follow(self, conn: redis.Redis, pubsub: redis.client.PubSub, stop: threading.Event) -> None:
        next_reconcile = time.monotonic() + self.reconcile_interval
        while not stop.is_set():
            wait = max(0.0, min(next_reconcile - time.monotonic(), 0.25))
            msg = pubsub.get_message(timeout=wait)
            if msg is not None and msg.get("type") == "message":
                try:
                    hinted: int | None = int(msg["data"])
                except (TypeError, ValueError):
                    hinted = None
                if hinted is None or hinted > self.version():
                    self._reconcile(conn, stop)
            if time.monotonic() >= next_reconcile:
                self._reconcile(conn, stop)
                next_reconcile = time.monotonic() + self.reconcile_interval

    # -- catching up -----------------------------------------------------------------------------

    def _report(self, message: str, level: int = logging.WARNING, *, exc_info: bool = False) -> None:
        """Log a problem once while it lasts (reconciles repeat every few seconds)."""
        if message != self._problem:
            self._problem = message
            log.log(level, message, exc_info=exc_info)

    def _applied(self, version: int, kind: str) -> None:
        self._problem = None
        if self.on_apply is not None:
            self.on_apply(version, kind)

    def _remote_version(self, conn: redis.Redis) -> int:
        raw = conn.get(self.keys.version)
        if raw is None:
            return 0
        try:
            return int(raw)
        except (TypeError, ValueError):
            self._report(f"ignoring unreadable {self.keys.version} in Redis: {raw!r:.40}", logging.ERROR)
            return 0

    def _reconcile(self, conn: redis.Redis, stop: threading.Event) -> None:
        target = self._remote_version(conn)
        local = self.version()
        if target < local:
            self._report(f"Redis announces version {target}, older than the local {local}; waiting for newer versions")
            return
        while local < target and not stop.is_set():
            wanted = list(range(local + 1, min(target, local + self.batch_size) + 1))
            raws = [_as_bytes(raw) for raw in conn.mget([self.keys.change(n) for n in wanted])]
            gap = False
            for n, raw in zip(wanted, raws, strict=True):
                change = self._decode_change(n, raw)
                if change is None:
                    gap = True
                    break
                self.writer.publish(change, version=n)
                log.debug("applied change set for version %d", n)
                self._applied(n, "change")
                local = n
            if gap:
                full = self._apply_full(conn, local)
                if full is None:
                    return
                local = full
                target = max(target, full)

    def _decode_change(self, version: int, raw: bytes | None) -> ChangeSet | None:
        if raw is None:
            return None
        try:
            return decode_change(raw, version)
        except CorruptValue as e:
            self._report(f"rejected the change set for version {version} from Redis: {e}", logging.ERROR)
            return None

    def _apply_full(self, conn: redis.Redis, local: int) -> int | None:
        """Apply the full state if it is newer than ``local``; its version, or None if it cannot help."""
        version_field, data = conn.hmget(self.keys.full, ["version", "data"])
        try:
            version, tables = decode_full(_as_bytes(version_field), _as_bytes(data))
        except CorruptValue as e:
            self._report(f"change set for version {local + 1} unavailable and the full state is unusable: {e}")
            return None
        if version <= local:
            self._report(
                f"change set for version {local + 1} unavailable and the full state is at version {version}; "
                "waiting for a newer one"
            )
            return None
        change = self._diff(tables)
        self.writer.publish(change, version=version)
        log.info("applied the full state at version %d (%d key(s) changed)", version, change.size())
        self._applied(version, "full")
        return version

    def _diff(self, tables: FullTables) -> ChangeSet:
        """The change that turns the local state into ``tables`` (unchanged values are left alone)."""
        _, local_tables = self.writer.read_all()
        change = ChangeSet()
        for table, out in change.tables():
            remote = tables.get(table, {})
            local = local_tables[table]
            for key, value in remote.items():
                raw = local.get(key)
                if raw is not None:
                    try:
                        stored = decode(raw)
                    except CorruptValue:
                        stored = None
                    if isinstance(stored, dict) and unstamped(table, stored) == unstamped(table, value):
                        continue
                out[key] = value
            for key in local.keys() - remote.keys():
                out[key] = None
        return change


def run_sync(
    data_dir: Path,
    redis_url: str,
    *,
    reconcile_interval: float = 2.0,
    stop: threading.Event | None = None,
    on_apply: ApplyHook | None = None,
) -> None:
    """Follow Redis into ``data_dir``'s LMDB until ``stop`` is set (or SIGTERM/SIGINT when run as a process)."""
    handlers: dict[signal.Signals, Any] = {}
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            event = stop

            def on_signal(signum: int, frame: FrameType | None) -> None:
                log.info("sync stopping (signal %d)", signum)
                event.set()

            for sig in (signal.SIGTERM, signal.SIGINT):
                handlers[sig] = signal.signal(sig, on_signal)
    sync = Sync(data_dir, redis_url, reconcile_interval=reconcile_interval, on_apply=on_apply)
    try:
        sync.run(stop)
        log.info("sync stopped at version %d", sync.version())
    finally:
        sync.close()
        for sig, previous in handlers.items():
            signal.signal(sig, previous)
