"""Builds of a write that cost what the write changed (issue 21).

A write that changes some features of a project (``Write.touch(project, features=...)``) has
only those features re-read, re-built and compiled: :class:`Builder` keeps, per environment, the
last build (every flag's definition and entry, what each feature adds to the DevCycle section,
and the compiled snapshot) and patches it. What does not grow with the number of flags (the
project, the environment, audiences, custom properties, overrides: ``devcycle_config.Context``)
is read every time; when the project differs from the kept one, the environment is built
whole (flags read its settings); when audiences differ, the features that reference a changed
one are built again (``control_plane.audience_dependents``); what the DevCycle section alone
reads (the environment's key, custom properties, overrides) has the section assembled again. A
feature whose definition moves with the clock (``features_snapshot.Flag.timed``) is rebuilt by
every build of its environment, as it was when every write rebuilt everything. The DevCycle
section is assembled again from the kept parts only when a changed feature's part changed.

The evaluator still compiles every changed flag before the write commits (DESIGN §3): a patch
compiles the upserted entries, and a section that changed is patched in too (it compiles; the
flags it does not concern are shared with the kept snapshot).

What is patched must be what the database holds before the write, or the patch would be built on
something else. Every kept build records the project's build generation it was built at
(``control_plane.build_generations``: raised by every write of the project, in its transaction).
A write patches a build made at the generation it raised from with the features it changed. A
build older than that (other replicas' writes on the same PostgreSQL came between, as when a load
balancer alternates writes between replicas, or a write raced a warm-up) is caught up: every write
also records, in its transaction, what it changed at the generation it raised
(``control_plane.build_changes``), and the build is patched with the union of the records of the
generations it missed and this write's features, when every one of them is there and names
features (the leader's :func:`_covered`, below); a missing record (pruned after some minutes) or
one of a whole change builds whole. A write's builds are kept only once its transaction committed
(:meth:`Builder.committed`, called by ``Ctx.commit``); a build whose transaction rolled back is
dropped, and its projects are built whole by the next write. A build that fails (a flag that
does not compile) drops what was kept too.

After a start nothing is kept: ``control_plane.warm_builds`` builds every project once on a
thread (:meth:`Builder.warm`), from a snapshot of the database at a known generation, and the
first write patches that build (waiting for it when it is under way).

A write that changes none of a project's features but only what the context holds, or nothing
a build reads (SDK keys, audiences, custom properties, environments, self-targeting overrides,
the project's row unless ``disablePassthroughRollouts`` changes, Releaseo and Airborne tables),
touches it with no features (``features=()``): its environments are patched with nothing but
what the context's change reaches (above), so an SDK key costs the context's read, and an
environment this write created is built whole. A variable write touches its feature.

Whole builds stay for everything else: a change of ``disablePassthroughRollouts`` (every DevCycle
flag reads it), a write after other replicas' writes it lacks a record of (pruned: older than
``build_changes.RETAIN``), and every publish that is not a write's own
(start, catch-up, restore), except the replicas' leader's.

The replicas' leader (``control_plane.replication``) keeps a :class:`Builder` of its own, for what
it published: each drain reads, in one snapshot, the outbox rows of the writes since (each says the
features it changed and the generation it raised) and :meth:`Builder.follow` patches the kept
build with their union when they raised every generation from the kept build's to the snapshot's;
a gap (a row of an older replica, or none) builds the project whole, as does a new term. The same
``_covered`` decides both catch-ups; the leader reads the outbox rows it drains anyway rather than
``build_changes`` (the intake's rows, which raise no generation, are only there).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import orjson

import evaluator
from control_plane import build_changes, build_generations
from control_plane.audience_dependents import changed_audiences, features_referencing
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
    snapshot: evaluator.Snapshot | None  # None: built by a Builder that does not compile
    timed: set[str]  # feature ids whose flag moves with the clock


@dataclass
class _Project:
    """A project's environments as built at ``generation`` (``control_plane.build_generations``)."""

    generation: int
    environments: dict[str, _Environment]


@dataclass
class _Warming:
    """A warm-up's build of a project at ``generation``, done or under way."""

    generation: int
    built: Future[dict[str, _Environment]]


class Builder:
    """Builds and validates the environments a write touched (module doc). ``patch=False``:
    every build is whole. ``compile=False``: builds are not compiled (the replicas' leader
    publishes what the writes validated; it needs the entries only)."""

    def __init__(self, *, patch: bool = True, compile: bool = True) -> None:
        self.patch = patch
        self.compile = compile
        # Project id → its environments as last built: committed builds, and the builds of the
        # write in progress (kept once it commits).
        self._kept: dict[str, _Project] = {}
        self._pending: dict[str, _Project] = {}
        # Project id → a warm-up's build (:meth:`warm`), until a write takes it.
        self._warm: dict[str, _Warming] = {}
        self._warm_lock = threading.Lock()
        self._lock = threading.Lock()
        # Environments built by patching, built whole, and warmed up, so far (logs and tests).
        self.counts = {"patched": 0, "whole": 0, "warmed": 0}

    def kept(self) -> dict[str, EnvironmentState]:
        """What is kept for the next write, by environment id."""
        with self._lock:
            return {
                env_id: EnvironmentState(env.extras, _flags(env.entries))
                for project in self._kept.values()
                for env_id, env in project.environments.items()
            }

    def validate_projects(
        self, db: Connection, project_ids: set[str], features: Mapping[str, Collection[str]] | None = None
    ) -> dict[str, EnvironmentState]:
        """Build and compile every environment of the projects, inside the write's transaction
        (which this raises each project's build generation in); ``features``: projects of which
        only these features changed. The states by environment id, for the publish after the
        commit. ApiError 400 if a flag does not compile."""
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
            with self._warm_lock:
                for project_id in self._pending:
                    self._warm.pop(project_id, None)  # older than what is kept now
            self._pending.clear()

    def warm(self, db: Connection, project_id: str) -> None:
        """Build a project whole from ``db``, one consistent read-only snapshot of the database
        (``Store.snapshot``), outside any write, for the next write to patch (a start keeps
        nothing: without this, the first write would build whole). A write that finds it under
        way at the generation it raised from, or an older one, waits for it; at a newer generation
        it is unused."""
        if project_id in self._kept:
            return  # a write built it already
        warming = _Warming(build_generations.current(db, project_id), Future())
        with self._warm_lock:
            self._warm[project_id] = warming
        try:
            env_ids = _environment_ids(db, project_id)
            built = {env_id: _whole(db, env_id, None)[0] for env_id in env_ids}
        except BaseException as e:
            warming.built.set_exception(e)
            with self._warm_lock:
                self._warm.pop(project_id, None)
            raise
        warming.built.set_result(built)
        self.counts["warmed"] += len(built)
        with self._warm_lock:
            if project_id in self._kept and self._warm.get(project_id) is warming:
                del self._warm[project_id]  # a write kept a newer build meanwhile

    def _warmed(self, project_id: str, generation: int) -> _Project | None:
        """The warm-up's build of the project if it was built at ``generation`` or before (waiting
        for it if it is under way; an older one is caught up like any older kept build)."""
        with self._warm_lock:
            warming = self._warm.pop(project_id, None)
        if warming is None or warming.generation > generation:
            return None
        try:
            return _Project(warming.generation, warming.built.result())
        except Exception:
            return None  # logged by the warm-up

    def _project(self, db: Connection, project_id: str, changed: Collection[str] | None) -> dict[str, EnvironmentState]:
        generation = build_generations.advance(db, project_id)
        # For the other replicas' writes that follow this one (they did not see it).
        build_changes.record(db, project_id, generation, changed)
        # Taken out while it is rebuilt: kept again only once the write commits.
        kept = self._kept.pop(project_id, None)
        if kept is None or kept.generation != generation - 1:
            warmed = self._warmed(project_id, generation - 1)
            if warmed is not None and (kept is None or warmed.generation > kept.generation):
                kept = warmed
        # A build of what the database held right before this write is patched with what it
        # changed; an older one (another replica wrote since) with what those writes changed too,
        # when every one of them recorded it.
        writes: dict[int | None, Collection[str] | None] = {generation: changed}
        if kept is not None and kept.generation < generation - 1:
            writes.update(build_changes.between(db, project_id, kept.generation, generation - 1))
        usable = kept is not None and kept.generation < generation  # a newer one: the database was replaced
        return self._build(db, project_id, generation, kept, _covered(kept, generation, writes) if usable else None)

    def follow(
        self, db: Connection, writes: Mapping[str, Mapping[int | None, Collection[str] | None]]
    ) -> dict[str, EnvironmentState]:
        """Outside any write, in one read-only snapshot of the database (the replicas' leader's
        drain): build the projects as ``db`` holds them. ``writes``: per project, what each write
        since the last build changed (by the generation it raised; None: a change that raised none),
        features or None (the project as a whole). The kept build is patched with their union when
        they cover every generation from its own to ``db``'s, else the project is built whole.
        Kept once :meth:`committed` confirms the build was published."""
        with self._lock:
            self._pending.clear()
            states: dict[str, EnvironmentState] = {}
            for project_id in sorted(writes):
                generation = build_generations.current(db, project_id)
                kept = self._kept.pop(project_id, None)
                changed = _covered(kept, generation, writes[project_id])
                states.update(self._build(db, project_id, generation, kept, changed))
            return states

    def _build(
        self, db: Connection, project_id: str, generation: int, kept: _Project | None, changed: Collection[str] | None
    ) -> dict[str, EnvironmentState]:
        """Build the project at ``generation``: patch ``kept`` with the ``changed`` features, or
        whole when they are None (``kept`` then only saves compiling what it holds alike)."""
        env_ids = _environment_ids(db, project_id)
        if not env_ids:
            return {}  # deleted by this write (or never had environments): nothing to keep
        before_envs = kept.environments if kept is not None else {}
        # An environment's build reads nothing of the project's other environments: one created
        # by this write is built whole, the others patched.
        usable = self.patch and changed is not None
        environments: dict[str, _Environment] = {}
        states = {}
        for env_id in env_ids:
            before = before_envs.get(env_id)
            if usable and before is not None and changed is not None:
                environments[env_id], states[env_id] = _patch(db, env_id, before, set(changed))
                self.counts["patched" if states[env_id].changed is not None else "whole"] += 1
            else:
                # A stale ``before`` still saves compiling the flags it holds alike (``_whole``).
                environments[env_id], states[env_id] = _whole(db, env_id, before, self.compile)
                self.counts["whole"] += 1
        self._pending[project_id] = _Project(generation, environments)
        return states


def _covered(
    kept: _Project | None, generation: int, writes: Mapping[int | None, Collection[str] | None]
) -> Collection[str] | None:
    """The features to patch ``kept`` with to reach ``generation``: the union of what ``writes``
    changed, if they raised every generation after ``kept``'s (else None: build whole). Both ways a
    kept build catches up use it: the leader's drains (:meth:`Builder.follow`, from outbox rows) and
    a write after other replicas' writes (:meth:`Builder._project`, from ``build_changes``)."""
    if kept is None or kept.generation > generation or set(range(kept.generation + 1, generation + 1)) - writes.keys():
        return None
    changed: set[str] = set()
    for raised, features in writes.items():
        if raised is not None and raised <= kept.generation:
            continue  # already in the kept build
        if features is None:
            return None
        changed.update(features)
    return changed


def _environment_ids(db: Connection, project_id: str) -> list[str]:
    rows = db.execute("SELECT id FROM environments WHERE project_id = ? ORDER BY created_at", (project_id,))
    return [r["id"] for r in rows]


def _patch(db: Connection, env_id: str, env: _Environment, changed: set[str]) -> tuple[_Environment, EnvironmentState]:
    """``env`` patched (in place, once everything compiled) with the changed features."""
    context = devcycle_context(db, env_id)
    if context is None or not _same_project(context, env.context):
        return _whole(db, env_id, env)
    ids = changed | env.timed
    if context.audience_trees != env.context.audience_trees or context.readable != env.context.readable:
        # The features whose flags or parts read a changed audience are built again too.
        audiences = changed_audiences(
            context.audience_trees, env.context.audience_trees, context.readable, env.context.readable
        )
        ids |= features_referencing(db, env_id, audiences)
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
    if context != env.context or any(_adds(parts.get(fid)) != _adds(env.parts.get(fid)) for fid in ids):
        # What a changed feature adds to the DevCycle section, or what the section reads besides
        # the features, changed: assembled again.
        unchanged = [part for fid, part in env.parts.items() if fid not in ids]
        extras = assemble_devcycle(context, [*unchanged, *parts.values()])
        extras_json = orjson.dumps(extras)
    try:
        if env.snapshot is None:
            snapshot = None  # a build that is not compiled
        elif extras_json != env.extras_json:
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
    env.extras, env.extras_json, env.snapshot, env.context = extras, extras_json, snapshot, context
    # Only the changed flags: the publisher reads nothing else of an incremental build.
    written = {key: (flag.order, flag.definition) for key, flag in upserts.items() if key in entries}
    return env, EnvironmentState(extras, written, changed=frozenset(entries.keys() | removed))


def _same_project(context: Context, kept: Context) -> bool:
    """Whether ``kept``'s flags and DevCycle parts were built for the same environment and
    project settings (flags read ``disablePassthroughRollouts``). What else differs is either
    read by the section alone (the environment's key, custom properties, overrides: assembled
    again from the parts) or audiences (the features that reference them are built again)."""
    return (
        context.project_id == kept.project_id
        and context.environment["_id"] == kept.environment["_id"]
        and context.project == kept.project
    )


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


def _whole(
    db: Connection, env_id: str, before: _Environment | None, compile: bool = True
) -> tuple[_Environment, EnvironmentState]:
    """Build ``env_id`` whole; compile it (unless not ``compile``) by patching ``before`` when there
    is one (only the flags that differ compile, and the DevCycle section when it changed), else
    anew."""
    context = devcycle_context(db, env_id)
    assert context is not None, "an environment listed in this transaction exists"
    parts = feature_parts(db, context)
    flags = feature_flags(db, env_id)
    extras = assemble_devcycle(context, parts.values())
    extras_json = orjson.dumps(extras)
    by_key = {f.key: (f.order, f.definition) for f in flags.values()}
    entries = {f.key: _entry(f) for f in flags.values()}
    try:
        if not compile:
            snapshot = None
        elif before is not None and before.snapshot is not None:
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
