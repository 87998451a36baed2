"""Numbered schema migrations (control_plane/migrations.py): a fresh store gets them all, a store
made by the previous release (no ``schema_migrations``) is adopted and then reached by new ones,
and a database this release cannot run on is refused."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import warnings
from importlib import resources
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from control_plane import migrations
from control_plane.__main__ import _schema_ready
from control_plane.app import create_app
from control_plane.backup import backup, restore
from control_plane.migrations import SQLITE, MigrationError, load, migrate, shipped, statements
from control_plane.settings import Settings
from control_plane.store import Store

PREVIOUS_RELEASE_DB = Path(__file__).parent / "fixtures" / "previous_release.sqlite3"
BASELINE = ["0001_core", "0002_devcycle", "0003_airborne", "0004_releaseo", "0005_events"]
# Every migration this release ships; the tests add theirs after it.
SHIPPED = [
    *BASELINE,
    "0006_sessions",
    "0007_sytwm",
    "0008_releaseo_board",
    "0009_oidc",
    "0010_devcycle_features",
    "0011_flow",
    "0012_self_targeting_metrics",
    "0013_replicas",
    "0014_publish_fencing",
    "0015_build_generations",
    "0016_build_changes",
]
# The version a test's own extra migration takes: the one after the shipped ones.
NEXT = f"{len(SHIPPED) + 1:04d}"
ADD_COLUMN = "ALTER TABLE features ADD COLUMN owner TEXT NOT NULL DEFAULT 'nobody';\n"


def schema_dir(tmp_path: Path, extra: dict[str, str] | None = None, name: str = "schema") -> Path:
    """This release's migration files plus ``extra`` ({file name: SQL}; replaces a file of that name)."""
    d = tmp_path / name
    d.mkdir()
    for f in resources.files(migrations.SCHEMA_PACKAGE).iterdir():
        if f.name.endswith(".sql"):
            (d / f.name).write_text(f.read_text())
    for file_name, sql in (extra or {}).items():
        (d / file_name).write_text(sql)
    return d


def recorded(path: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version"))


def schema_of(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
        return [(name, sql) for name, sql in rows]


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def previous_release_copy(tmp_path: Path) -> Path:
    path = tmp_path / "control_plane.sqlite3"
    shutil.copyfile(PREVIOUS_RELEASE_DB, path)
    return path


# --- start-up ----------------------------------------------------------------------------------


def test_fresh_database_gets_every_migration_recorded(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    Store(path).close()
    assert recorded(path) == [(m.version, m.name, m.checksum) for m in shipped("sqlite")]
    assert [name for _, name, _ in recorded(path)] == SHIPPED
    assert "feature_configurations" in {name for name, _ in schema_of(path)}


def test_second_start_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        before = list(db.execute("SELECT * FROM schema_migrations"))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn, SQLITE, shipped("sqlite")) == []
    finally:
        conn.close()
    Store(path).close()
    with sqlite3.connect(path) as db:
        assert list(db.execute("SELECT * FROM schema_migrations")) == before


def test_previous_release_database_is_adopted_with_its_data(tmp_path: Path) -> None:
    path = previous_release_copy(tmp_path)
    assert "schema_migrations" not in {name for name, _ in schema_of(path)}
    before = schema_of(path)
    with sqlite3.connect(path) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    Store(path).close()
    assert [name for _, name, _ in recorded(path)] == SHIPPED
    # Adoption changed nothing but the record and what later migrations add (0006: sessions; 0007:
    # the api column of api_keys and the sytwm tables; Releaseo's board, and segment versions
    # rebuilt to outlive their segment; 0009: OIDC logins and identities): the same tables and
    # indexes as a fresh store, same rows.
    fresh = tmp_path / "fresh.sqlite3"
    Store(fresh).close()
    assert schema_of(path) == schema_of(fresh)
    added = {"schema_migrations", "sessions", "sessions_user", "api_keys", "api_keys_organisation"}
    added |= {"releaseo_segment_versions"}
    added |= {name for name, _ in schema_of(fresh) if name.startswith("sytwm_")}
    added |= {name for name, _ in schema_of(fresh) if name.startswith("releaseo_") and (name, _) not in before}
    # Tables and indexes of the later migrations (0009 on) are new to the previous release.
    added |= {name for name, _ in schema_of(fresh)} - {name for name, _ in before}
    assert [row for row in schema_of(path) if row[0] not in added] == [r for r in before if r[0] not in added]
    assert "api TEXT NOT NULL DEFAULT 'admin'" in dict(schema_of(path))["api_keys"]
    with sqlite3.connect(path) as db:
        assert {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts} == counts
    # This release's API serves the previous release's data.
    settings = Settings(data_dir=tmp_path, jwt_secret="a-new-secret-for-this-test-0123456789")
    with TestClient(create_app(settings)) as admin:
        login = admin.post("/users/login", json={"name": "ops", "password": "correct-horse"})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['user_token']['access_token']}", "x-organisation": "acme"}
        feature = admin.get("/v1/projects/shop/features/checkout", headers=auth)
        assert feature.status_code == 200, feature.text
        assert [v["key"] for v in feature.json()["variations"]] == ["on", "off"]
        (config,) = admin.get(
            "/v1/projects/shop/features/checkout/configurations", params={"environment": "prod"}, headers=auth
        ).json()
        assert config["status"] == "active"


def test_a_new_migration_reaches_a_previous_release_database(tmp_path: Path) -> None:
    path = previous_release_copy(tmp_path)
    extra = {f"{NEXT}_feature_owner.sql": ADD_COLUMN + "CREATE INDEX features_owner ON features(owner);\n"}
    Store(path, schema=schema_dir(tmp_path, extra)).close()
    assert [name for _, name, _ in recorded(path)] == [*SHIPPED, f"{NEXT}_feature_owner"]
    assert "owner" in columns(path, "features")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT key, owner FROM features").fetchall() == [("checkout", "nobody")]


def test_a_new_migration_reaches_a_migrated_database_alone(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    Store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        applied = migrate(conn, SQLITE, load(schema_dir(tmp_path, {f"{NEXT}_feature_owner.sql": ADD_COLUMN}), "sqlite"))
    finally:
        conn.close()
    assert [m.name for m in applied] == [f"{NEXT}_feature_owner"]


def test_a_restored_previous_release_backup_migrates_at_start(tmp_path: Path) -> None:
    old_data = tmp_path / "old"
    old_data.mkdir()
    shutil.copyfile(PREVIOUS_RELEASE_DB, old_data / "control_plane.sqlite3")
    restored = restore(backup(old_data, tmp_path / "backup"), tmp_path / "restored")
    store = Store(restored / "control_plane.sqlite3")
    try:
        assert [row["name"] for row in store.all("SELECT name FROM schema_migrations")] == SHIPPED
        assert store.one("SELECT name FROM users")["name"] == "ops"  # type: ignore[index]
    finally:
        store.close()


def test_concurrent_starts_apply_each_migration_once(tmp_path: Path) -> None:
    # A new release started by several processes at once. ADD COLUMN fails if run twice; the slow
    # read before it holds each start inside its transaction long enough that, without the write
    # lock taken at BEGIN, several would see the next migration missing and collide.
    path = tmp_path / "cp.sqlite3"
    Store(path).close()
    slow_read = (
        "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)"
        " SELECT x FROM c);\n"
    )
    schema = schema_dir(tmp_path, {f"{NEXT}_feature_owner.sql": slow_read + ADD_COLUMN})
    barrier, errors = threading.Barrier(4), []

    def start() -> None:
        barrier.wait()
        try:
            Store(path, schema=schema).close()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [name for _, name, _ in recorded(path)] == [*SHIPPED, f"{NEXT}_feature_owner"]


# --- refusals ----------------------------------------------------------------------------------


def test_an_edited_migration_is_refused_naming_its_file(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    Store(path).close()
    edited = (resources.files(migrations.SCHEMA_PACKAGE) / "0002_devcycle.sql").read_text() + "-- edited\n"
    with pytest.raises(MigrationError, match=r"0002_devcycle\.sql differs .* never edited"):
        Store(path, schema=schema_dir(tmp_path, {"0002_devcycle.sql": edited}))


def test_a_renamed_migration_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    Store(path).close()
    schema = schema_dir(tmp_path)
    (schema / "0005_events.sql").rename(schema / "0005_sdk_events.sql")
    with pytest.raises(MigrationError, match=r"0005_sdk_events\.sql differs .*0005_events"):
        Store(path, schema=schema)


def test_a_newer_release_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    Store(path, schema=schema_dir(tmp_path, {f"{NEXT}_feature_owner.sql": ADD_COLUMN})).close()
    with pytest.raises(MigrationError, match=f"{NEXT}_feature_owner applied, which this release does not know"):
        Store(path)
    # `serve` stops before starting workers, with the reason.
    assert _schema_ready(str(path)) is False


def test_a_missing_migration_below_an_applied_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM schema_migrations WHERE version = 3")
    with pytest.raises(MigrationError, match=rf"0003_airborne\.sql is not applied but the later {SHIPPED[-1]}\.sql is"):
        Store(path)


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    path = previous_release_copy(tmp_path)
    failing = (
        ADD_COLUMN
        + "CREATE TABLE half_done (x INTEGER);\n"
        + "UPDATE features SET owner = 'someone';\n"
        + "INSERT INTO no_such_table VALUES (1);\n"
    )
    with pytest.raises(MigrationError, match=rf"{NEXT}_feature_owner\.sql failed: no such table: no_such_table"):
        Store(path, schema=schema_dir(tmp_path, {f"{NEXT}_feature_owner.sql": failing}))
    # The baseline committed (one transaction each); nothing of the failed migration did.
    assert [name for _, name, _ in recorded(path)] == SHIPPED
    assert "owner" not in columns(path, "features")
    assert "half_done" not in {name for name, _ in schema_of(path)}
    # Fixed, it applies.
    Store(path, schema=schema_dir(tmp_path, {f"{NEXT}_feature_owner.sql": ADD_COLUMN}, name="fixed")).close()
    assert "owner" in columns(path, "features")


def test_a_migration_may_not_commit_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    sneaky = "CREATE TABLE early (x INTEGER);\nCOMMIT;\n"
    with pytest.raises(MigrationError, match=rf"{NEXT}_sneaky\.sql ended the transaction"):
        Store(path, schema=schema_dir(tmp_path, {f"{NEXT}_sneaky.sql": sneaky}))
    assert [name for _, name, _ in recorded(path)] == SHIPPED


# --- SQLite: table rebuilds and foreign keys ------------------------------------------------------


def test_a_table_rebuild_keeps_references_and_foreign_keys_come_back_on(tmp_path: Path) -> None:
    path = previous_release_copy(tmp_path)
    # SQLite's way to change a constraint: create, copy, drop, rename; other tables reference it.
    rebuild = """
CREATE TABLE organisations_new (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (length(name) <= 100),
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL
);
INSERT INTO organisations_new SELECT id, name, created_by, created_at FROM organisations;
DROP TABLE organisations;
ALTER TABLE organisations_new RENAME TO organisations;
"""
    store = Store(path, schema=schema_dir(tmp_path, {f"{NEXT}_organisation_name_length.sql": rebuild}))
    try:
        assert store.one("PRAGMA foreign_keys")[0] == 1  # type: ignore[index]
        assert store.one("SELECT count(*) FROM projects JOIN organisations o ON o.id = organisation_id")[0] == 1  # type: ignore[index]
    finally:
        store.close()


def test_a_migration_leaving_dangling_references_is_refused(tmp_path: Path) -> None:
    path = previous_release_copy(tmp_path)
    with pytest.raises(MigrationError, match=rf"{NEXT}_drop_users\.sql leaves \d+ row\(s\) referencing missing rows"):
        Store(path, schema=schema_dir(tmp_path, {f"{NEXT}_drop_users.sql": "DELETE FROM users;\n"}))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 1


# --- files -------------------------------------------------------------------------------------


def test_statements_split_only_between_statements() -> None:
    script = """-- a comment; not a split
CREATE TABLE t (x TEXT DEFAULT 'a;b');
CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
    UPDATE t SET x = 'c;d' WHERE rowid = new.rowid;
END;
/* block; comment */ CREATE INDEX t_x ON t(x)
"""
    parts = list(statements(script))
    assert len(parts) == 3
    assert parts[1].startswith("CREATE TRIGGER") and parts[1].endswith("END;")
    assert parts[2].endswith("ON t(x)")


def test_a_trigger_migration_runs(tmp_path: Path) -> None:
    trigger = """CREATE TABLE notes (body TEXT, stamped TEXT);
CREATE TRIGGER notes_stamp AFTER INSERT ON notes BEGIN
    UPDATE notes SET stamped = 'yes;really' WHERE rowid = new.rowid;
END;
"""
    store = Store(tmp_path / "cp.sqlite3", schema=schema_dir(tmp_path, {f"{NEXT}_notes.sql": trigger}))
    try:
        with store.transaction() as db:
            db.execute("INSERT INTO notes (body) VALUES ('x')")
        assert store.one("SELECT stamped FROM notes")[0] == "yes;really"  # type: ignore[index]
    finally:
        store.close()


def test_file_names_versions_and_dialect_variants(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "0001_base.sql").write_text("CREATE TABLE a (x INTEGER);")
    (d / "0001_base.sqlite.sql").write_text("CREATE TABLE a (x INTEGER) STRICT;")
    (d / "0002_more.sql").write_text("CREATE TABLE b (x INTEGER);")
    (d / "0002_more.postgresql.sql").write_text("CREATE TABLE b (x BIGINT);")
    (d / "notes.txt").write_text("not a migration")
    assert [m.filename for m in load(d, "sqlite")] == ["0001_base.sqlite.sql", "0002_more.sql"]
    assert [m.filename for m in load(d, "postgresql")] == ["0001_base.sql", "0002_more.postgresql.sql"]
    (d / "0004_gap.sql").write_text("")
    with pytest.raises(MigrationError, match="no migration 0003 for sqlite"):
        load(d, "sqlite")
    (d / "0004_gap.sql").unlink()
    (d / "0002_other.sql").write_text("")
    with pytest.raises(MigrationError, match="both claim version 0002"):
        load(d, "sqlite")
    (d / "0002_other.sql").unlink()
    (d / "3_short.sql").write_text("")
    with pytest.raises(MigrationError, match=r"3_short\.sql: a migration file is named NNNN_description\.sql"):
        load(d, "sqlite")


def test_checksum_ignores_line_endings() -> None:
    assert migrations.checksum("a;\r\nb;\r\n") == migrations.checksum("a;\nb;\n")
