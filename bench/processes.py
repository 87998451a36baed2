"""Start the real processes (``python -m control_plane serve``, ``python -m server serve``,
``python -m server sync``) for benchmarks and end-to-end tests, on free loopback ports, and always
stop them; the admin calls they share (bootstrap a project, create and toggle flags)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


def find_repo() -> Path:
    """The flagedge checkout the suite measures: the nearest directory holding ``pyproject.toml``
    and ``evaluator/Cargo.toml``, looking up from this file and then from the working directory.

    The suite runs the checkout's cargo benchmarks and writes into its ``bench/``, so it needs a
    checkout (``python -m bench`` from the repository root); bench is not part of the wheel.
    """
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for directory in (start, *start.parents):
            if (directory / "pyproject.toml").is_file() and (directory / "evaluator" / "Cargo.toml").is_file():
                return directory
    raise SystemExit("python -m bench runs from a flagedge checkout: cd to the repository root first")


REPO = find_repo()


@dataclass(frozen=True)
class Checkout:
    """Where the measured processes come from: a checkout and the Python that runs it (with its
    extension built). Another checkout (``python -m bench.ab``) runs as a baseline from its own
    directory, so its packages, not this one's, are imported."""

    root: Path
    python: Path

    def env(self) -> dict[str, str]:
        """Its packages first on the path (a ``PYTHONPATH`` naming another checkout would win)."""
        return {"PYTHONPATH": f"{self.root}{os.pathsep}{self.root / 'evaluator' / 'python'}"}


THIS = Checkout(REPO, Path(sys.executable))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def process(
    args: list[str],
    health_url: str,
    log: Path,
    env: dict[str, str] | None = None,
    cpu: int | None = None,
    timeout: float = 30,
    checkout: Checkout = THIS,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m <args>`` of ``checkout`` (pinned to ``cpu`` if given) until ``health_url``
    answers 200; kill its process group after."""
    cmd = [str(checkout.python), "-m", *args]
    env = {**checkout.env(), **(env or {})}
    with command(cmd, health_url, log, env=env, cpu=cpu, timeout=timeout, cwd=checkout.root) as proc:
        yield proc


@contextmanager
def command(
    cmd: list[str],
    health_url: str,
    log: Path,
    env: dict[str, str] | None = None,
    cpu: int | None = None,
    timeout: float = 30,
    cwd: Path = REPO,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (pinned to ``cpu`` if given) until ``health_url`` answers 200; kill its
    process group after."""
    name = Path(cmd[0]).name if cmd[1:2] != ["-m"] else cmd[2]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            pinned(cmd, cpu),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(health_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become healthy:\n{log.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        # The whole process group: granian's workers outlive a main process killed with -9.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(10)
                if sig == signal.SIGTERM:
                    time.sleep(0.2)
            except subprocess.TimeoutExpired:
                continue


class Background:
    """A long-running ``python -m ...`` process (``sync``) that is killed and restarted at will."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args, self.log, self.env = args, log, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *self.args],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL to the whole process group, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def can_pin(cpu: int | None) -> bool:
    """Whether ``cpu`` exists here and taskset can pin to it."""
    return cpu is not None and cpu < (os.cpu_count() or 1) and shutil.which("taskset") is not None


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    """``cmd`` under ``taskset -c cpu`` when the machine has that core (server and load apart)."""
    return ["taskset", "-c", str(cpu), *cmd] if can_pin(cpu) else cmd


def worker_pids(main_pid: int) -> list[int]:
    """The child processes of ``main_pid`` (granian's workers)."""
    out = subprocess.run(["pgrep", "-P", str(main_pid)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def bootstrap_project(admin: httpx.Client) -> tuple[dict[str, str], dict[str, str]]:
    """Through the admin API: sign up ``ops``, create organisation ``acme``, project ``shop`` and
    its ``prod`` environment. Returns the owner's headers and the environment's SDK keys by kind."""
    user = admin.post(
        "/users/create",
        json={
            "name": "ops",
            "password": "correct-horse",
            "first_name": "O",
            "last_name": "P",
            "email": "ops@example.com",
        },
    )
    assert user.status_code == 200, user.text
    auth = {"Authorization": f"Bearer {user.json()['user_token']['access_token']}", "x-organisation": "acme"}
    assert admin.post("/organisations/create", json={"name": "acme"}, headers=auth).status_code == 200
    assert admin.post("/v1/projects", json={"name": "Shop", "key": "shop"}, headers=auth).status_code == 201
    env = admin.post(
        "/v1/projects/shop/environments", json={"name": "Prod", "key": "prod", "type": "production"}, headers=auth
    )
    assert env.status_code == 201, env.text
    return auth, {kind: items[0]["key"] for kind, items in env.json()["sdkKeys"].items()}


def on_rule(enabled: bool = True) -> dict[str, Any]:
    """A flag configuration whose one rule is the constant ``enabled``, for every context."""
    return {"status": "active", "targeting": {"rules": [{"filter": {"type": "constant", "value": enabled}}]}}


def create_flags(
    admin: httpx.Client, auth: dict[str, str], keys: list[str], env: str = "prod", timeout: float = 30
) -> httpx.Response:
    """Create ``keys`` in ONE commit (``/features/multiple``), each enabled for everyone in ``env``."""
    body = [{"key": k, "name": k, "configurations": {env: on_rule()}} for k in keys]
    return admin.post("/v1/projects/shop/features/multiple", json=body, headers=auth, timeout=timeout)


def patch_flag(admin: httpx.Client, auth: dict[str, str], key: str, enabled: bool, env: str = "prod") -> httpx.Response:
    """Turn ``key`` on or off for everyone in ``env`` (one admin write); the answer as it came."""
    return admin.patch(
        f"/v1/projects/shop/features/{key}/configurations",
        params={"environment": env},
        json=on_rule(enabled),
        headers=auth,
    )


def set_flag(admin: httpx.Client, auth: dict[str, str], key: str, enabled: bool, env: str = "prod") -> None:
    """:func:`patch_flag`, which must be acknowledged (200)."""
    r = patch_flag(admin, auth, key, enabled, env)
    assert r.status_code == 200, r.text
