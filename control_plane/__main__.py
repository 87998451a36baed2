"""``python -m control_plane``: ``serve`` the admin API, or seed a ``demo`` project."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from control_plane.settings import ENV_PREFIX, add_server_arguments, from_namespace, to_env


def _serve(ns: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    from contract.lifecycle import DataDirLocked, check_free, mark_master

    settings = from_namespace(ns)
    try:
        # Refuse here, with one clear message, rather than in a forked worker.
        check_free(settings.data_dir)
    except DataDirLocked as e:
        print(f"control plane cannot start: {e}", file=sys.stderr)
        return 1
    if not _schema_ready(str(settings.database)):
        return 1
    # Workers build their app from the environment (granian imports the factory after fork).
    os.environ.update(to_env(settings))
    logging.getLogger("control_plane").info(
        "control plane listening on http://%s:%d (data %s)", settings.host, settings.port, settings.data_dir
    )
    print(f"control plane listening on http://{settings.host}:{settings.port} data={settings.data_dir}", flush=True)
    mark_master()  # the worker dies with this process
    # One worker: SQLite has one writer, and the login limiter lives in process.
    Granian(
        "control_plane.app:app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        address=settings.host,
        port=settings.port,
        workers=1,
        log_access=False,
        # A worker that dies (OOM kill, crash) is started again; without this granian's master
        # stops serving altogether. A worker dying again within seconds of its restart still
        # ends the master (granian's crash-loop guard), so a broken start is not retried for ever.
        respawn_failed_workers=True,
    ).serve()
    return 0


def _schema_ready(db_path: str) -> bool:
    """Bring the store to this release's schema before any worker starts; a database this release
    cannot run on (an edited migration, a newer release's database) stops the start here, with one
    clear message instead of a failing worker."""
    from control_plane.migrations import MigrationError
    from control_plane.store import Store

    try:
        Store(db_path).close()
    except MigrationError as e:
        where = "PostgreSQL" if db_path.startswith("postgres") else db_path  # the URL may hold a password
        print(f"control plane cannot start on {where}: {e}", file=sys.stderr)
        return False
    return True


def _demo(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from control_plane.demo import run

    return run(Path(ns.data_dir).resolve(), ns.json)


def _backup(ns: argparse.Namespace) -> int:
    if os.environ.get("FLAGEDGE_DATABASE_URL"):
        print("the store is PostgreSQL: back it up with pg_dump (README, Backup and restore)", file=sys.stderr)
        return 2
    from pathlib import Path

    from control_plane.backup import BackupError, backup

    try:
        out = backup(Path(ns.data_dir).resolve(), Path(ns.out).resolve())
    except BackupError as e:
        print(f"backup failed: {e}", file=sys.stderr)
        return 1
    print(f"backup written to {out}")
    return 0


def _restore(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from control_plane.backup import BackupError, restore

    try:
        target = restore(Path(ns.source).resolve(), Path(ns.data_dir).resolve())
    except BackupError as e:
        print(f"restore failed: {e}", file=sys.stderr)
        return 1
    print(f"restored into {target}; start the control plane there to republish its snapshots")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m control_plane", description="flagedge control plane")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the admin API")
    add_server_arguments(serve)
    serve.set_defaults(func=_serve)
    demo = sub.add_parser("demo", help="seed a demo organisation, project, flags, release and widget")
    demo.add_argument(
        "--data-dir",
        default=os.environ.get(ENV_PREFIX + "DATA_DIR", "./data"),
        help=f"data directory [env {ENV_PREFIX}DATA_DIR]",
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object with the keys")
    demo.set_defaults(func=_demo)
    back = sub.add_parser("backup", help="copy the store (consistent while serving) and secrets to a new directory")
    back.add_argument(
        "--data-dir",
        default=os.environ.get(ENV_PREFIX + "DATA_DIR", "./data"),
        help=f"data directory [env {ENV_PREFIX}DATA_DIR]",
    )
    back.add_argument("--out", required=True, help="new, empty directory for the backup")
    back.set_defaults(func=_backup)
    rest = sub.add_parser("restore", help="restore a backup into a new data directory (snapshots rebuild on start)")
    rest.add_argument("--from", dest="source", required=True, help="backup directory")
    rest.add_argument("--data-dir", required=True, help="new, empty data directory")
    rest.set_defaults(func=_restore)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
