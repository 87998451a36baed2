"""A real PostgreSQL server for tests: ``initdb`` into a temporary directory, ``postgres`` on a free
port (as an unprivileged user when the tests run as root: PostgreSQL refuses to run as root).

One server serves a whole test session; each test gets a fresh database copied from a migrated
template (``CREATE DATABASE … TEMPLATE``), which takes milliseconds instead of migrating again.
Durability settings are off (``fsync=off``): the tests exercise the control plane, not the disk.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

USER = "flagedge"
# Byte-order text comparison, as SQLite's: ORDER BY and ranges on text agree between the stores.
INITDB_LOCALE = ("--locale=C", "--encoding=UTF8")
_names = itertools.count()


def bin_dir() -> Path:
    """Where Debian's postgresql package keeps initdb and postgres (not on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("postgres")
    if which:
        return Path(which).resolve().parent
    raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql; ./dev test installs it)")


def _server_user() -> str | None:
    """Who runs the server: ``nobody`` when the tests run as root (PostgreSQL refuses root)."""
    return "nobody" if os.geteuid() == 0 else None


class PostgresServer:
    def __init__(self, port: int) -> None:
        self.port = port
        # Not under pytest's tmp dirs: those are private to the test user, and the server may run
        # as another one.
        self.root = Path(tempfile.mkdtemp(prefix="flagedge-pg-"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "nobody", "nogroup")
        bindir = bin_dir()
        user = _server_user()
        group = "nogroup" if user else None
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust", "--no-sync", *INITDB_LOCALE],
            check=True,
            capture_output=True,
            user=user,
            group=group,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        args = [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]
        self.log = open(self.root / "server.log", "wb")  # noqa: SIM115 (kept open while it runs)
        self.proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(self.data), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            user=user,
            group=group,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start: {(self.root / 'server.log').read_text()}") from None
                time.sleep(0.05)

    def create_database(self, template: str | None = None, name: str | None = None) -> str:
        """A new empty database (or a copy of ``template``); its URL."""
        name = name or f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
            conn.execute(sql.encode())
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # smart shutdown: fast enough once the clients are gone
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(Exception):
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
