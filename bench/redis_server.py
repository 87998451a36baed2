"""A real ``redis-server`` on a free loopback port, with no persistence.

Its one home, shared by the benchmarks (``python -m bench.soak --faults``) and the tests (the
``redis_server`` fixture in ``tests/conftest.py`` imports it through ``tests/support``).
``kill()`` (SIGKILL, like a crash) and ``start()`` again on the same port take Redis away
mid-stream; a Redis restarted this way comes back empty, as a Redis without persistence does.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from bench.processes import free_port

__all__ = ["RedisServer", "free_port"]


class RedisServer:
    """One redis-server process on ``port``, its log and working files in ``workdir``."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None, "already running"
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found (install it: apt-get install -y redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            while True:
                if self.proc.poll() is not None:
                    log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                    self.proc = None
                    raise RuntimeError(f"redis-server exited on start:\n{log}")
                try:
                    if probe.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not answer PING")
                time.sleep(0.02)
        finally:
            probe.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
