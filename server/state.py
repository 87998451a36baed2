"""What one edge worker serves: an immutable view of the LMDB store, swapped atomically.

A background task polls the store's version; when it moves, the worker reads what changed since
its view's version in one LMDB read transaction (``server.delta``: everything on start), patches
the compiled snapshots of the environments whose flags or document-wide members (the DevCycle
section, overrides, ``sdkVisibility``) changed with just those (the flags the document does not
concern are shared with the old snapshot), compiles anew the environments it has no snapshot of
(in a thread, off the event loop), and replaces the whole :class:`View` with one assignment. A request
reads ``state.view`` once and uses only that object, so it never mixes two versions. An
environment whose value is corrupt or does not compile keeps its last good snapshot and is
reported not ready (and is compiled anew from all its flags on the next version); everything
else moves on.

A store that cannot be read at all (a damaged or missing file, LMDB reporting a corrupt page,
a store at a version older than the one served) never stops the worker: it keeps the view it
has, ``store_problem`` says why (``/ready`` answers 503 and names it), the problem is logged
once while it lasts, and the store is reopened on the next poll (a damaged file is moved aside
and rebuilt by the control plane). A worker that starts on such a store starts anyway, not
ready, and keeps polling. The view's version never goes backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import orjson

import evaluator
from contract.framing import CorruptValue, decode, payload
from contract.sdk_keys import Kind, is_kind
from contract.store import SnapshotReader, flag_key, snapshot_dir
from server.board import Board, build_board
from server.delta import Delta, document_digest, inline_entries, read_delta
from server.devcycle.document import DevCycleDocument, devcycle_document

log = logging.getLogger("server.state")


@dataclass(frozen=True)
class Environment:
    id: str
    key: str
    project: str
    version: int
    snapshot: evaluator.Snapshot
    # `GET /features` body, built once per version when first asked for
    # (``server.definitions``): a patched snapshot would otherwise pay for every flag on every
    # change.
    definitions: bytes | None = None
    # The environment's DevCycle config as the DevCycle routes serve it (None without one).
    devcycle: DevCycleDocument | None = None
    # ``server.delta.document_digest`` of the stored document: a change to it patches the
    # snapshot's document-wide members.
    digest: str = ""
    # The document carried features inline (written whole): a change to it compiles anew.
    inline: bool = False

    def keep_definitions(self, body: bytes) -> None:
        """Keep this version's ``GET /features`` body (a cache on an immutable value: every
        build gives the same bytes)."""
        object.__setattr__(self, "definitions", body)


@dataclass(frozen=True)
class SdkKey:
    environment: str
    kind: Kind
    key_hash: str


@dataclass(frozen=True)
class View:
    version: int = 0
    environments: dict[str, Environment] = field(default_factory=dict)
    keys: dict[str, SdkKey] = field(default_factory=dict)
    releases: dict[str, Any] = field(default_factory=dict)
    widgets: dict[str, Any] = field(default_factory=dict)
    # Releaseo project key → its public board (``server.board``).
    boards: dict[str, Board] = field(default_factory=dict)
    # Environment id (or table/key) → why its latest value could not be used.
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def loaded(self) -> bool:
        """A published snapshot has been read (versions start at 1). Before that, a key or name
        this view lacks may well be valid: the edge answers 503, never "unknown" (``server.auth``)."""
        return self.version > 0

    def sdk_key(self, secret: str) -> SdkKey | None:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        found = self.keys.get(digest)
        if found is None or not hmac.compare_digest(found.key_hash, digest):
            return None
        return found


def _log_remote_only(env_id: str, snapshot: evaluator.Snapshot, old: Environment | None) -> None:
    remote = snapshot.remote_only()
    if remote and (old is None or not old.snapshot.remote_only()):
        log.warning(
            "environment %s: GET /features leaves out %d flag(s) Reflag SDKs cannot evaluate locally "
            "(remote evaluation only): %s",
            env_id,
            len(remote),
            ", ".join(key for key, _ in remote),
        )


def _environment(
    env_id: str, raw: bytes, old: Environment | None, delta: Delta, flags: dict[str, bytes | None]
) -> Environment:
    """The environment at ``delta``'s version: compiled anew from all its flags when ``delta``
    carries them (``rebuild``), else ``old`` patched with the flags that changed."""
    value = decode(raw)
    stamped = int(value["version"])
    document = value["document"]
    rebuild = delta.rebuild.get(env_id)
    if rebuild is None and old is not None and old.version == stamped:
        return old
    digest = document_digest(document)
    # An unchanged document still carries the features it carried (a changed one that carries
    # or carried any is compiled anew: read_delta).
    inline = old.inline if old is not None else False
    if rebuild is not None:
        if delta.complete and old is not None and old.version == stamped:
            return old
        extras, entries = inline_entries(document)
        inline = bool(entries)
        entries += [payload(r) for r in rebuild.values()]
        snapshot = evaluator.Snapshot.assemble(orjson.dumps(extras), entries)
        devcycle = devcycle_document(document)
    else:
        if old is None:  # read_delta rebuilds every environment the view lacks
            raise KeyError(f"no snapshot of {env_id} to patch")
        upserts = [payload(r) for r in flags.values() if r is not None]
        removed = [k for k, r in flags.items() if r is None]
        if digest != old.digest:
            # The document-wide members changed (read_delta rebuilds a document with inline
            # features): they compile, the flags they do not concern are shared.
            extras, _ = inline_entries(document)
            snapshot = old.snapshot.patch(upserts, removed, orjson.dumps(extras))
            devcycle = devcycle_document(document)
        else:
            snapshot = old.snapshot.patch(upserts, removed) if flags else old.snapshot
            devcycle = old.devcycle
    if rebuild is not None:  # a patch leaves the list to GET /features (it costs every flag)
        _log_remote_only(env_id, snapshot, old)
    return Environment(
        env_id,
        str(value.get("environment", "")),
        str(value.get("project", "")),
        stamped,
        snapshot,
        None,
        devcycle,
        digest,
        inline,
    )


def build_view(previous: View, delta: Delta) -> View:
    """The next view: ``previous`` with ``delta`` applied, reusing every compiled snapshot (and
    compiled flag) that did not change."""
    changed = delta.tables
    problems: dict[str, str] = {}
    if not delta.complete:
        gone = set(changed["environments"]) | {f"{t}/{k}" for t in changed for k in changed[t]}
        gone |= {f"sdk_keys/{k[:8]}" for k in changed["sdk_keys"]}
        problems = {k: v for k, v in previous.problems.items() if k not in gone}
    environments = {} if delta.complete else dict(previous.environments)
    flags_by_env = delta.flags_of()
    for env_id in set(changed["environments"]) | set(flags_by_env):
        raw = changed["environments"].get(env_id)
        old = previous.environments.get(env_id)
        if raw is None:
            if env_id in changed["environments"]:
                environments.pop(env_id, None)  # deleted
            continue  # its flags changed without it: nothing the store allows
        try:
            environments[env_id] = _environment(env_id, raw, old, delta, flags_by_env.get(env_id, {}))
        except (CorruptValue, evaluator.RuleError, KeyError, TypeError, ValueError) as e:
            problems[env_id] = f"{type(e).__name__}: {e}"
            if old is not None:
                environments[env_id] = old
            log.error("environment %s: keeping the last good snapshot: %s", env_id, e)
    keys = {} if delta.complete else dict(previous.keys)
    for digest, raw in changed["sdk_keys"].items():
        keys.pop(digest, None)
        if raw is None:
            continue
        try:
            value = decode(raw)
            kind = value["kind"]
            if not is_kind(kind):
                raise TypeError(f"unknown SDK key kind {kind!r}")
            keys[digest] = SdkKey(str(value["environment"]), kind, digest)
        except (CorruptValue, KeyError, TypeError) as e:
            problems[f"sdk_keys/{digest[:8]}"] = str(e)
            if digest in previous.keys:
                keys[digest] = previous.keys[digest]
    releases = _decoded(changed["releases"], previous.releases, problems, "releases", delta.complete)
    widgets = _decoded(changed["widgets"], previous.widgets, problems, "widgets", delta.complete)
    boards = _boards(changed["boards"], previous.boards, problems, delta.complete)
    return View(delta.version, environments, keys, releases, widgets, boards, problems)


def _boards(
    raw: dict[str, bytes | None], previous: dict[str, Board], problems: dict[str, str], complete: bool
) -> dict[str, Board]:
    """Boards by project key, reusing the compiled ones whose stamp did not move; a value that
    cannot be read keeps its last good board (and is reported), as environments do."""
    out: dict[str, Board] = {} if complete else dict(previous)
    for key, value in raw.items():
        old = previous.get(key)
        if value is None:
            out.pop(key, None)
            continue
        try:
            decoded = decode(value)
            if old is not None and old.version == int(decoded["version"]):
                out[key] = old
                continue
            board, problem = build_board(key, decoded)
            out[key] = board
            if problem is not None:
                problems[f"boards/{key}"] = problem
        except (CorruptValue, KeyError, TypeError, ValueError) as e:
            problems[f"boards/{key}"] = f"{type(e).__name__}: {e}"
            if old is not None:
                out[key] = old
            log.error("board %s: keeping the last good one: %s", key, e)
    return out


def _decoded(
    raw: dict[str, bytes | None], previous: dict[str, Any], problems: dict[str, str], table: str, complete: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {} if complete else dict(previous)
    for key, value in raw.items():
        if value is None:
            out.pop(key, None)
            continue
        try:
            out[key] = decode(value)
        except CorruptValue as e:
            problems[f"{table}/{key}"] = str(e)
            if key in previous:
                out[key] = previous[key]
    return out


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except (OSError, TypeError):
        return None
    # glibc's, absent from other C libraries.
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _libc()
# glibc's mallopt parameters.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: Answers of this size or more get their own mapping, returned to the OS when freed.
MMAP_THRESHOLD = 4 << 20


def release_freed_memory() -> None:
    """Hand the allocator's free pages back to the OS. Compiling a snapshot parses its JSON into
    temporary trees; glibc would otherwise keep that heap in the worker's RSS for good."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def bound_freed_memory() -> None:
    """Fix glibc's mmap threshold for this worker. Left dynamic, it rises to the largest block
    freed (an answer of every flag: about 10 MB at 100,000 flags), blocks below it then come
    from the heap, and the trim threshold rises to twice that: that much stays free at the top
    of the heap, in the worker's RSS (38 MB at 100,000 flags after a few answers). Fixed, larger
    answers are mapped and unmapped, and the trim threshold keeps its default (128 kB); W2-sized
    answers (30 kB) are not affected.

    And one malloc arena: snapshots compile in threads (off the event loop), and glibc gives a
    thread its own arena, whose free holes after a compile stay in RSS beside the main arena's
    (about 9 MB less at 100,000 flags with one). The worker's threads rarely allocate at once:
    Python holds the GIL, and only a compile runs beside the event loop."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        _LIBC.mallopt(_M_ARENA_MAX, 1)


@dataclass
class RefreshFailure:
    """Why the latest refreshes of the store failed (not a damaged value: the store itself
    could not be opened or read), since when (wall clock) and how many in a row."""

    error: str
    since: float = field(default_factory=time.time)
    failures: int = 0


class EdgeState:
    """Owned by one worker: opened in the app lifespan (after the fork)."""

    def __init__(self, data_dir: Path, poll_interval: float) -> None:
        self.data_dir = data_dir
        self.poll_interval = poll_interval
        self.view = View()
        self.loaded = False
        self.reader: SnapshotReader | None = None
        # Set while the store cannot be read (None when it can): /ready names it while the last
        # good view keeps being served; cleared by the next refresh that works.
        self.failure: RefreshFailure | None = None
        # Set when the reader is (re)opened: a rebuilt file's change log does not describe the
        # view's history, so the next refresh reads everything.
        self._everything = True
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        # Called with (previous view, new view) right after each swap (evaluation counts drain
        # the snapshots a swap replaced, ``server.evaluation_counts``).
        self.on_swap: list[Callable[[View, View], None]] = []
        # Held while a thread reads the store (``stored_flags``) and while the store is closed
        # or reopened, which must not happen under that read.
        self._reader_lock = threading.Lock()
        # One `GET /features` body built at a time (``server.definitions``).
        self.definitions_lock = asyncio.Lock()
        self._refreshing = False
        self._remap_pending = False
        # Views are built, and the heap they free returned, on this one thread, in turn. With
        # ``asyncio.to_thread`` the trim could run on another pool thread while the build's
        # thread still held its work item (whose arguments are the delta and the replaced view):
        # what they freed after the trim stayed in the worker's RSS, 24.6 MB more in about one
        # load of six at 100,000 flags (glibc's in-use bytes the same; a later trim gave them
        # back). One thread drops a work item before it takes the next.
        self._compiler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-compile")

    def _close_reader(self) -> None:
        with self._reader_lock:
            if self.reader is not None:
                with contextlib.suppress(lmdb.Error):
                    self.reader.close()
                self.reader = None

    def stored_flags(self, env_id: str) -> list[bytes]:
        """The evaluator entries of ``env_id``'s flags as the store holds them now (those its
        document carries inline first, as when it is compiled; damaged values left out), read in
        one transaction. Safe in a thread: the store is not closed meanwhile."""
        with self._reader_lock:
            if self.reader is None:
                return []
            with self.reader.reading() as txn:
                document = txn.prefixed("environments", env_id).get(env_id)
                raw = txn.prefixed("flags", flag_key(env_id, ""))
        out = []
        with contextlib.suppress(CorruptValue, KeyError, TypeError):
            out += inline_entries(decode(document)["document"])[1] if document is not None else []
        for value in raw.values():
            with contextlib.suppress(CorruptValue):
                out.append(payload(value))
        return out

    def release_store_pages(self) -> None:
        """Unmap the store after reading every flag of an environment outside a refresh
        (``stored_flags``). During a refresh, once it is over: a refresh awaiting its build
        between reading the store and taking the new view must not see it reopened."""
        if self._refreshing:
            self._remap_pending = True
        else:
            self._unmap_store()

    def _unmap_store(self) -> None:
        """Reopen the store after reading all of it (or a whole environment): the read mapped its
        pages of ``data.mdb`` into this worker, and the pages stay in its RSS while mapped (about as much as the
        compiled snapshots at 100,000 flags, though the page cache could drop them). Reopened,
        the map holds only what later refreshes read. The same file keeps its change log, so the
        next refresh stays incremental; a file replaced in between is read whole."""
        with self._reader_lock:
            reader, self.reader = self.reader, None
            if reader is None:
                return
            try:
                self.reader = reader.remapped()
            except lmdb.Error:
                self._everything = True  # opened again, and read whole, on the next poll
                return
            if self.reader.inode != reader.inode:
                self._everything = True

    def _problem(self, problem: str | None, *, exc_info: bool = False) -> None:
        """Record the store's state; log only when it changes (the poll repeats every 20 ms)."""
        if problem is None:
            if self.failure is not None:
                log.warning(
                    "snapshot store readable again after %d failed refresh(es); serving version %d",
                    self.failure.failures,
                    self.view.version,
                )
                self.failure = None
            return
        if self.failure is None or self.failure.error != problem:
            log.error(
                "snapshot store unreadable, serving version %d until it is repaired: %s",
                self.view.version,
                problem,
                exc_info=exc_info,
            )
        if self.failure is None:
            self.failure = RefreshFailure(problem)
        self.failure.error = problem
        self.failure.failures += 1

    async def refresh(self) -> bool:
        """Load a newer store version if there is one; True when the view changed. Never raises
        for a store that cannot be read: the current view stays and ``failure`` says why."""
        self._refreshing = True
        try:
            return await self._refresh()
        except lmdb.Error as e:
            # Reopen on the next poll: a file moved aside and rebuilt is a new file, and an
            # environment over a damaged one may hold state LMDB no longer trusts.
            self._close_reader()
            self._problem(f"{type(e).__name__}: {e}")
            return False
        finally:
            self._refreshing = False

    async def _refresh(self) -> bool:
        if self._remap_pending:  # asked for while the last refresh ran (``release_store_pages``)
            self._remap_pending = False
            self._unmap_store()
        if self.reader is None:
            if not (snapshot_dir(self.data_dir) / "data.mdb").exists() and not self.loaded:
                return False  # not published yet (a fresh host): not a failure, just not ready
            self.reader = SnapshotReader(self.data_dir)
            self._everything = True
        reader = self.reader
        version = reader.version()
        if self.loaded and version == self.view.version:
            self._problem(None)
            return False
        if self.loaded and version < self.view.version:
            # A store rebuilt from scratch before its first publish, or restored from an old
            # copy: serving it would take versions backwards.
            self._problem(f"the store is at version {version}, older than the served {self.view.version}")
            return False
        previous = self.view
        with reader.reading() as txn:
            delta = read_delta(txn, previous, everything=self._everything or not self.loaded)
        self._problem(None)
        loop = asyncio.get_running_loop()
        view = await loop.run_in_executor(self._compiler, build_view, previous, delta)
        self._everything = False
        self.view = view
        self.loaded = True
        for listener in self.on_swap:
            listener(previous, view)
        if delta.complete or delta.rebuild:
            self._unmap_store()
        if delta.rebuild:
            del previous, delta
            await loop.run_in_executor(self._compiler, release_freed_memory)
        async with self._changed:
            self._changed.notify_all()
        return True

    async def poll_once(self) -> None:
        """One refresh, with any failure recorded for /ready (once in the log) instead of ending
        the worker: the last good view keeps being served, and the next poll retries."""
        try:
            await self.refresh()
        except Exception as e:
            self._problem(f"refresh failed: {type(e).__name__}: {e}", exc_info=True)

    async def _poll(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_interval)

    async def start(self) -> None:
        """Load what the store has and start polling. Never fails: a worker whose store cannot
        be read starts not ready (failing here would make granian respawn it in a loop, and
        give up on the whole server)."""
        bound_freed_memory()
        await self.poll_once()
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._close_reader()
        self._compiler.shutdown(wait=False, cancel_futures=True)

    async def wait_for(self, version: int, timeout: float) -> View:
        """The current view once its version is ≥ ``version``, or after ``timeout`` seconds."""
        if self.view.version >= version:
            return self.view
        # asyncio.timeout, not asyncio.wait_for: wait_for runs the condition wait in another task,
        # which a repeated cancellation (anyio cancels a disconnected SSE stream until it stops)
        # can leave waiting while this task releases the lock ("cannot wait on un-acquired lock").
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: self.view.version >= version)
        return self.view

    async def wait_change(self, seen: int, timeout: float) -> View:
        """The view after its version moves past ``seen``, or the current one after ``timeout``."""
        return await self.wait_for(seen + 1, timeout)
