"""Builds of a write that cost what the write changed (issue 21).

A write that changes some features of a project (``Write.touch(project, features=...)``) has
only those features re-read, re-built and compiled: :class:`Builder` keeps, per environment, the
last build (every flag's definition and entry, what each feature adds to the DevCycle section,
and the compiled snapshot) and patches it. What does not grow with the number of flags (the
project, the environment, audiences, custom properties, overrides: ``devcycle_config.Context``)
is read every time; when it differs from the kept one, the environment is built whole. A
feature whose definition moves with the clock (``features_snapshot.Flag.timed``) is rebuilt by
every build of its environment, as it was when every write rebuilt everything. The DevCycle
section is assembled again from the kept parts only when a changed feature's part changed.

The evaluator still compiles every changed flag before the write commits (DESIGN §3): a patch
compiles the upserted entries, and a section that changed is patched in too (it compiles; the
flags it does not concern are shared with the kept snapshot).

What is kept must be what the database holds before the write, or the patch would be built on
something else. A write's builds are kept only once its transaction committed
(:meth:`Builder.committed`, called by ``Ctx.commit``); a build whose transaction rolled back is
dropped, and its projects are built whole by the next write. A build that fails (a flag that
does not compile) drops what was kept too. With several replicas on PostgreSQL another replica's
write is invisible to what this one keeps, so there (``patch=False``) every build is whole.

Whole builds stay for everything else: a write that touches a project as a whole (audiences,
settings, environments, keys, ...), the first write after a start, and every publish that is
not a write's own (start, catch-up, restore, the replicas' leader).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

import evaluator
from control_plane.devcycle_config import Context, FeaturePart, assemble_devcycle, devcycle_context, feature_parts
from control_plane.dialect import Connection
from control_plane.features_snapshot import Flag, feature_flags
from control_plane.snapshots import EnvironmentState, invalid


def _entry(flag: Flag) -> bytes:
    """A flag's entry as the evaluator's ``Snapshot.assemble`` and ``patch`` read it."""
    return orjson.dumps({"order": flag.order, "definition": flag.definition})


@dataclass
class _Environment:
    """One environment as last built. Definitions are kept only as their entries' JSON (what the
    evaluator compiled), not as Python objects: a fraction of the memory at 100,000 flags."""

    context: Context
    parts: dict[str, FeaturePart]  # feature id → what it adds to the DevCycle section
    keys: dict[str, str]  # feature id → its flag key (features active here)
    entries: dict[str, bytes]  # flag key → entry, as compiled
    extras: dict[str, Any]
    extras_json: bytes
    snapshot: evaluator.Snapshot
    timed: set[str]  # feature ids whose flag moves with the clock


class Builder:
    """Builds and validates the environments a write touched (module doc). ``patch=False``:
    every build is whole (replicas sharing a database)."""

    def __init__(self, *, patch: bool = True) -> None:
        self.patch = patch
        # Project id → its environments as last built, by environment id: committed builds, and
        # the builds of the write in progress (kept once it commits).
        self._kept: dict[str, dict[str, _Environment]] = {}
        self._pending: dict[str, dict[str, _Environment]] = {}
        self._lock = threading.Lock()
        # Environments built by patching and built whole, so far (logs and tests read them).
        self.counts = {"patched": 0, "whole": 0}

    def kept(self) -> dict[str, EnvironmentState]:
        """What is kept for the next write, by environment id."""
        with self._lock:
            return {
                env_id: EnvironmentState(env.extras, _flags(env.entries))
                for environments in self._kept.values()
                for env_id, env in environments.items()
            }

    def validate_projects(
        self, db: Connection, project_ids: set[str], features: Mapping[str, Collection[str]] | None = None
    ) -> dict[str, EnvironmentState]:
        """Build and compile every environment of the projects, inside the write's transaction;
        ``features``: projects of which only these features changed. The states by environment
        id, for the publish after the commit. ApiError 400 if a flag does not compile."""
        with self._lock:
            # Builds no commit confirmed: their transaction rolled back.
            self._pending.clear()
            states: dict[str, EnvironmentState] = {}
            for project_id in sorted(project_ids):
                states.update(self._project(db, project_id, (features or {}).get(project_id)))
            return states

    def committed(self) -> None:
        """The transaction of the last :meth:`validate_projects` committed: its builds are what
        the database holds now."""
        with self._lock:
            self._kept.update(self._pending)
            self._pending.clear()

    def _project(self, db: Connection, project_id: str, changed: Collection[str] | None) -> dict[str, EnvironmentState]:
        # Taken out while it is rebuilt: kept again only once the write commits.
        kept = self._kept.pop(project_id, None)
        env_ids = [
            r["id"]
            for r in db.execute("SELECT id FROM environments WHERE project_id = ? ORDER BY created_at", (project_id,))
        ]
        if not env_ids:
            return {}  # deleted by this write (or never had environments): nothing to keep
        usable = self.patch and kept is not None and changed is not None and kept.keys() == set(env_ids)
        environments: dict[str, _Environment] = {}
        states = {}
        for env_id in env_ids:
            before = kept.get(env_id) if kept is not None else None
            if usable and before is not None and changed is not None:
                environments[env_id], states[env_id] = _patch(db, env_id, before, set(changed))
                self.counts["patched" if states[env_id].changed is not None else "whole"] += 1
            else:
                environments[env_id], states[env_id] = _whole(db, env_id, before)
                self.counts["whole"] += 1
        self._pending[project_id] = environments
        return states


def _patch(db: Connection, env_id: str, env: _Environment, changed: set[str]) -> tuple[_Environment, EnvironmentState]:
    """``env`` patched (in place, once everything compiled) with the changed features."""
    context = devcycle_context(db, env_id)
    if context is None or context != env.context:
        return _whole(db, env_id, env)
    ids = changed | env.timed
    flags = feature_flags(db, env_id, ids)
    parts = feature_parts(db, context, ids)
    upserts: dict[str, Flag] = {}
    removed: set[str] = set()
    for fid in ids:
        old, new = env.keys.get(fid), flags.get(fid)
        if old is not None and (new is None or new.key != old):
            removed.add(old)
        if new is not None:
            upserts[new.key] = new
    removed -= upserts.keys()
    entries = {key: _entry(flag) for key, flag in upserts.items()}
    entries = {key: entry for key, entry in entries.items() if env.entries.get(key) != entry}
    extras, extras_json = env.extras, env.extras_json
    if any(_adds(parts.get(fid)) != _adds(env.parts.get(fid)) for fid in ids):
        # What a changed feature adds to the DevCycle section changed: assembled again.
        unchanged = [part for fid, part in env.parts.items() if fid not in ids]
        extras = assemble_devcycle(context, [*unchanged, *parts.values()])
        extras_json = orjson.dumps(extras)
    try:
        if extras_json != env.extras_json:
            # The document-wide members changed: they compile, the unconcerned flags do not.
            snapshot = env.snapshot.patch(list(entries.values()), sorted(removed), extras_json)
        elif entries or removed:
            snapshot = env.snapshot.patch(list(entries.values()), sorted(removed))
        else:
            snapshot = env.snapshot
    except evaluator.RuleError as e:
        raise invalid(e) from None
    # Everything compiled: what is kept moves on.
    for key in removed:
        env.entries.pop(key, None)
    env.entries.update(entries)
    for fid in ids:
        if fid in flags:
            env.keys[fid] = flags[fid].key
        else:
            env.keys.pop(fid, None)
        if fid in flags and flags[fid].timed:
            env.timed.add(fid)
        else:
            env.timed.discard(fid)
    _updated(env.parts, parts, ids)
    env.extras, env.extras_json, env.snapshot = extras, extras_json, snapshot
    # Only the changed flags: the publisher reads nothing else of an incremental build.
    written = {key: (flag.order, flag.definition) for key, flag in upserts.items() if key in entries}
    return env, EnvironmentState(extras, written, changed=frozenset(entries.keys() | removed))


def _adds(part: FeaturePart | None) -> FeaturePart | None:
    """What a feature adds to the DevCycle section (None: nothing, as if it were not there)."""
    return None if part is None or part.adds_nothing() else part


def _updated(kept: dict[str, FeaturePart], parts: dict[str, FeaturePart], ids: set[str]) -> None:
    """Replace the parts of ``ids`` in ``kept`` (a feature without a part is gone)."""
    for fid in ids:
        if fid in parts:
            kept[fid] = parts[fid]
        else:
            kept.pop(fid, None)


def _whole(db: Connection, env_id: str, before: _Environment | None) -> tuple[_Environment, EnvironmentState]:
    """Build ``env_id`` whole; compile it by patching ``before`` when there is one (only the flags
    that differ compile, and the DevCycle section when it changed), else anew."""
    context = devcycle_context(db, env_id)
    assert context is not None, "an environment listed in this transaction exists"
    parts = feature_parts(db, context)
    flags = feature_flags(db, env_id)
    extras = assemble_devcycle(context, parts.values())
    extras_json = orjson.dumps(extras)
    by_key = {f.key: (f.order, f.definition) for f in flags.values()}
    entries = {f.key: _entry(f) for f in flags.values()}
    try:
        if before is not None:
            upserts = [entry for key, entry in entries.items() if before.entries.get(key) != entry]
            removed = sorted(before.entries.keys() - entries.keys())
            if before.extras_json != extras_json:
                snapshot = before.snapshot.patch(upserts, removed, extras_json)
            elif upserts or removed:
                snapshot = before.snapshot.patch(upserts, removed)
            else:
                snapshot = before.snapshot
        else:
            snapshot = evaluator.Snapshot.assemble(extras_json, list(entries.values()))
    except evaluator.RuleError as e:
        raise invalid(e) from None
    timed = {fid for fid, f in flags.items() if f.timed}
    keys = {fid: f.key for fid, f in flags.items()}
    env = _Environment(context, parts, keys, entries, extras, extras_json, snapshot, timed)
    return env, EnvironmentState(extras, by_key)


def _flags(entries: dict[str, bytes]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Flags by key from their entries, as :class:`EnvironmentState` holds them."""
    out = {}
    for key, entry in entries.items():
        loaded = orjson.loads(entry)
        out[key] = (loaded["order"], loaded["definition"])
    return out
