"""The replicas' leader publishes what the drained writes changed (``Replication._drain`` and
``Builder.follow``), and what it publishes is byte for byte what a whole build publishes.

Several replicas on one PostgreSQL: random feature and project writes through any of them; after
each drain, every value the leader's LMDB holds (without its version stamp) equals a whole build of
every project from the database, what the leader keeps for the next drain equals a whole build of
each environment, and most builds were patches. A drained write whose outbox row does not say what
it changed (an older replica's row, or a generation raised without a row) makes the leader build
the project whole.
"""

from __future__ import annotations

import random
import time
import warnings
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from control_plane import build_generations
from control_plane.publisher import Publisher
from control_plane.replication import Replication
from control_plane.snapshots import build_environment_state
from control_plane.store import Store, now_iso
from tests.control_plane.conftest import Api
from tests.control_plane.devcycle_support import Project
from tests.control_plane.routes.devcycle.support import setup
from tests.control_plane.test_incremental_builds import (
    RULE,
    _builder,
    _keys,
    _two_features,
    _write,
    assert_kept_is_a_whole_build,
    assert_tables_are,
    whole_build,
)
from tests.control_plane.test_replication import _replica

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _replication(client: TestClient) -> Replication:
    replication: Replication = client.app.state.replication  # type: ignore[attr-defined]
    return replication


def _store(client: TestClient) -> Store:
    store: Store = client.app.state.services.store  # type: ignore[attr-defined]
    return store


def _value(store: Store, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row of ``sql``."""
    row = store.one(sql, params)
    assert row is not None
    return row[0]


def _drained(leader: TestClient, timeout: float = 20.0) -> None:
    """Until the leader published every outbox row (its builds are kept by then)."""
    start = time.monotonic()
    while _value(_store(leader), "SELECT COUNT(*) FROM publish_outbox"):
        assert time.monotonic() - start < timeout, "the leader did not drain the outbox"
        time.sleep(0.02)


def assert_published_is_a_whole_build(leader: TestClient) -> None:
    """Every value the leader's LMDB holds, and every build it keeps, equals a whole build (its
    builds are not compiled: the writes validated them)."""
    publisher: Publisher = leader.app.state.publisher  # type: ignore[attr-defined]
    builder = _replication(leader).builder
    _, tables = publisher.writer.read_all()
    with _store(leader).read() as db:
        whole = whole_build(db)
        for env_id, state in builder.kept().items():
            assert orjson.dumps(state.document()) == orjson.dumps(build_environment_state(db, env_id).document())
    assert_tables_are(tables, whole)


@pytest.mark.parametrize("seed", [3, 4])
def test_the_leader_publishes_patched_builds_equal_to_whole_builds(
    tmp_path: Path, postgres_url: str, seed: int
) -> None:
    a, b = _replica(tmp_path / "a", postgres_url), _replica(tmp_path / "b", postgres_url)
    with a, b:
        leader = _replication(a)
        assert leader.leader
        p = setup(Api(a))
        apis = [p.api, Api(b)]
        rng = random.Random(seed)
        for step in range(30):
            p.api = rng.choice(apis)  # one project (its key may change), written through either
            _write(p, rng, _keys(p), step)
            _drained(a)
            assert_published_is_a_whole_build(a)
        counts = leader.builder.counts
        assert counts["patched"] > counts["whole"], counts
        assert a.get("/ready").json()["publish"]["builds"]["patched"] == counts["patched"]


@pytest.mark.parametrize("seed", [5, 6])
def test_writes_alternating_between_replicas_patch_builds_equal_to_whole_builds(
    tmp_path: Path, postgres_url: str, seed: int
) -> None:
    """A load balancer in front of two replicas: each write goes to the other replica than the
    last. Each replica catches the build it kept up with what the other's writes recorded they
    changed (``build_changes``): every build a write keeps, and everything the leader publishes,
    equals a whole build, and the writes patch."""
    a, b = _replica(tmp_path / "a", postgres_url), _replica(tmp_path / "b", postgres_url)
    with a, b:
        p = setup(Api(a))
        apis = [p.api, Api(b)]
        rng = random.Random(seed)
        builders = [_builder(a), _builder(b)]
        before = [dict(builder.counts) for builder in builders]
        for step in range(30):
            p.api = apis[step % 2]
            _write(p, rng, _keys(p), step)
            # The other replica's build is of an older generation: the next write there catches it up.
            assert_kept_is_a_whole_build(p.api.client)
            _drained(a)
            assert_published_is_a_whole_build(a)
        for builder, counts in zip(builders, before, strict=True):
            patched = builder.counts["patched"] - counts["patched"]
            whole = builder.counts["whole"] - counts["whole"]
            # Whole: a new environment's first build, a change of the project's settings.
            assert patched > 3 * whole, (counts, builder.counts)


def _old_replica_row(db: Any, project_ids: set[str], features: Any) -> None:
    """An outbox row as a replica from before features and generations were recorded writes it."""
    db.execute(
        "INSERT INTO publish_outbox (projects, committed_at) VALUES (?, ?)",
        (orjson.dumps(sorted(project_ids)).decode(), now_iso()),
    )


def test_the_leader_builds_whole_after_a_write_whose_change_it_does_not_know(tmp_path: Path, postgres_url: str) -> None:
    a, b = _replica(tmp_path / "a", postgres_url), _replica(tmp_path / "b", postgres_url)
    with a, b:
        counts = _replication(a).builder.counts
        pa = setup(Api(a))
        pb = Project(Api(b), pa.owner, pa.organisation, pa.key, pa.environments)
        _two_features(pa)

        def configure(status: str, expect: str) -> None:
            before = dict(counts)
            assert pb.configure("f0", "production", {**RULE, "status": status}).status_code == 200
            _drained(a)
            other = "whole" if expect == "patched" else "patched"
            assert counts[expect] == before[expect] + 2 and counts[other] == before[other], (before, counts)
            assert_published_is_a_whole_build(a)

        # Another replica's write: its row says which feature changed, at which generation.
        configure("inactive", "patched")
        # An older replica's row names the project only: built whole.
        services = b.app.state.services  # type: ignore[attr-defined]
        record_change = services.record_change
        services.record_change = _old_replica_row
        try:
            configure("active", "whole")
        finally:
            services.record_change = record_change
        configure("inactive", "patched")  # what the whole build kept is patched again
        # A generation raised by a write the leader has no row of: built whole.
        project_id = _value(_store(a), "SELECT id FROM projects")
        with _store(b).transaction() as db:
            build_generations.advance(db, project_id)
        configure("active", "whole")
        configure("inactive", "patched")


def test_outbox_rows_say_what_each_write_changed(tmp_path: Path, postgres_url: str) -> None:
    """Each row: per project, the generation the write raised and its features (or the whole
    project); read as a list of project ids, as an older leader does, it still names them."""
    with _replica(tmp_path / "a", postgres_url) as a:
        _replication(a).stop()  # no publisher: the rows stay to be looked at
        p = setup(Api(a))
        _two_features(p)
        store = _store(a)
        done = _value(store, "SELECT MAX(seq) FROM publish_outbox")
        assert p.configure("f1", "production", RULE).status_code == 200
        assert p.post("/environments/production/sdk-keys", {"server": True}).status_code < 300
        project_id = _value(store, "SELECT id FROM projects")
        with store.read() as db:
            generation = build_generations.current(db, project_id)
        rows = [orjson.loads(r[0]) for r in store.all("SELECT projects FROM publish_outbox WHERE seq > ?", (done,))]
        feature = _value(store, "SELECT id FROM features WHERE key = 'f1'")
        assert rows == [
            {project_id: {"generation": generation - 1, "features": [feature]}},
            {project_id: {"generation": generation, "features": []}},
        ]
        assert [set(row) for row in rows] == [{project_id}, {project_id}]


def test_one_drain_patches_the_union_of_its_rows(tmp_path: Path, postgres_url: str) -> None:
    """Writes committed while the leader is held up are drained together: the kept build is
    patched once with every feature they changed."""
    a, b = _replica(tmp_path / "a", postgres_url), _replica(tmp_path / "b", postgres_url)
    with a, b:
        leader = _replication(a)
        counts = leader.builder.counts
        pa = setup(Api(a))
        pb = Project(Api(b), pa.owner, pa.organisation, pa.key, pa.environments)
        _two_features(pa)
        _drained(a)
        before, publishes, rows = dict(counts), leader.publishes, leader.published_rows
        # The leader's record of a publish waits for this lock: the writes meanwhile queue up.
        with psycopg.connect(postgres_url) as hold:
            hold.execute("SELECT seq FROM publish_state WHERE id = 1 FOR UPDATE")
            # Each a change of its own (the first one may be drained alone).
            changes: list[tuple[str, str, dict[str, Any]]] = [
                ("f0", "production", RULE),
                ("f1", "production", RULE),
                ("f0", "development", {"status": "inactive"}),
                ("f1", "development", {"status": "inactive"}),
            ]
            for key, env, config in changes:
                r = pb.configure(key, env, config)
                assert r.status_code == 200, r.text
        _drained(a)
        assert leader.published_rows - rows == 4
        assert leader.publishes - publishes < 4  # at least one drain took several rows
        assert counts["whole"] == before["whole"] and counts["patched"] > before["patched"], (before, counts)
        assert_published_is_a_whole_build(a)


def test_a_new_term_builds_whole_and_patches_what_it_built(tmp_path: Path, postgres_url: str) -> None:
    a, b = _replica(tmp_path / "a", postgres_url), _replica(tmp_path / "b", postgres_url)
    with b:
        with a:
            pa = setup(Api(a))
            pb = Project(Api(b), pa.owner, pa.organisation, pa.key, pa.environments)
            _two_features(pa)
            assert not _replication(b).leader
        start = time.monotonic()
        while not _replication(b).leader:
            assert time.monotonic() - start < 10, "b did not take over"
            time.sleep(0.02)
        counts = _replication(b).builder.counts
        assert counts["whole"] == 2 and counts["patched"] == 0, counts  # the takeover: every environment
        assert pb.configure("f0", "production", RULE).status_code == 200
        assert counts["whole"] == 2 and counts["patched"] == 2, counts
        assert_published_is_a_whole_build(b)
