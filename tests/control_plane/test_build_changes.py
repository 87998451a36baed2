"""Each write records, per project and build generation it raised, what it changed
(``control_plane.build_changes``), for the replicas that did not see it; old records go in batches.
Both stores (SQLite writes them too; one process never reads them)."""

from __future__ import annotations

import time

import orjson

from control_plane import build_changes
from control_plane.build_generations import current
from control_plane.shared_limits import BatchPruner
from control_plane.store import Store
from tests.control_plane.conftest import Api
from tests.control_plane.routes.devcycle.support import setup
from tests.control_plane.test_incremental_builds import RULE, _services, _two_features


def _changes(store: Store, project_id: str) -> dict[int, list[str] | None]:
    rows = store.all("SELECT generation, features FROM build_changes WHERE project_id = ?", (project_id,))
    return {int(r[0]): None if r[1] is None else orjson.loads(r[1]) for r in rows}


def test_every_raised_generation_records_what_its_write_changed(api: Api) -> None:
    p = setup(api)
    _two_features(p)
    store: Store = _services(api).store
    project_id = store.one("SELECT id FROM projects")[0]  # type: ignore[index]
    feature = store.one("SELECT id FROM features WHERE key = 'f1'")[0]  # type: ignore[index]
    assert p.configure("f1", "production", RULE).status_code == 200
    assert p.post("/environments/production/sdk-keys", {"server": True}).status_code < 300
    with store.read() as db:
        generation = current(db, project_id)
    changes = _changes(store, project_id)
    assert set(changes) == set(range(1, generation + 1))  # every generation, none missing
    assert changes[generation - 1] == [feature]
    assert changes[generation] == []  # an SDK key: no feature


def test_records_older_than_the_retention_are_pruned_in_batches(api: Api) -> None:
    pruner: BatchPruner = api.client.app.state.build_changes_pruner  # type: ignore[attr-defined]
    pruner.every = 0.0  # every write's commit prunes (the test's old records)
    p = setup(api)
    _two_features(p)
    store: Store = _services(api).store
    project_id = store.one("SELECT id FROM projects")[0]  # type: ignore[index]
    for status in ("inactive", "active", "inactive"):
        assert p.configure("f0", "production", {"status": status}).status_code == 200
    recorded = _changes(store, project_id)
    newest = max(recorded)
    now = time.time()
    with store.transaction() as db:
        db.execute("UPDATE build_changes SET at = ? WHERE generation < ?", (now - build_changes.RETAIN - 1, newest))
    assert build_changes.prune(store, now, batch=2) == 2
    assert build_changes.prune(store, now, batch=len(recorded)) == len(recorded) - 3
    assert build_changes.prune(store, now) == 0
    assert set(_changes(store, project_id)) == {newest}  # within the retention: kept
    # After a write commits, the control plane prunes when due.
    with store.transaction() as db:
        db.execute("UPDATE build_changes SET at = ?", (now - build_changes.RETAIN - 1,))
    assert p.configure("f0", "production", {"status": "active"}).status_code == 200
    assert set(_changes(store, project_id)) == {newest + 1}
