"""A minimal HTTP/1.1 client over a raw socket, for requests no well-behaved client would send:
invalid bytes in the request target and headers, lying ``Content-Length``, one byte at a time.

Also what the tests need to watch the edge's worker processes (pids, RSS) and which worker owns a
given TCP connection.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

Headers = list[tuple[bytes, bytes]]


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def from_app(self) -> bool:
        """The answer came from our application (every one carries ``X-Request-Id``), not from
        granian's HTTP layer rejecting a malformed request before the app saw it."""
        return "x-request-id" in self.headers


def read_response(sock: socket.socket, head_only: bool = False) -> RawResponse:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            if not data:
                raise ConnectionError("connection closed without an answer")
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if (head_only and status == 200) or status in (204, 304):
        return RawResponse(status, headers, b"")
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return RawResponse(status, headers, rest[:length])
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                chunk = sock.recv(65536)
                if not chunk:
                    return RawResponse(status, headers, body)
                rest += chunk
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            body += rest[:size]
            rest = rest[size + 2 :]
            if size == 0:
                return RawResponse(status, headers, body)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return RawResponse(status, headers, rest)


def request(
    port: int,
    method: bytes,
    target: bytes,
    headers: Headers | None = None,
    body: bytes = b"",
    *,
    content_length: bool = True,
    head_only: bool = False,
    timeout: float = 20.0,
) -> RawResponse:
    """Send exactly these bytes (``Host``, ``Connection: close`` and, unless told otherwise,
    ``Content-Length`` are added) and read the one answer (with ``head_only`` only the head of
    a 200: an event stream never ends)."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers or []]
    if content_length and (body or method in (b"POST", b"PUT", b"PATCH")):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    payload = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer (413, 400) and close before reading all of a huge request.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)
        return read_response(sock, head_only)


class KeepAlive:
    """One persistent HTTP/1.1 connection (so a test knows which worker answers it)."""

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.local_port: int = self.sock.getsockname()[1]

    def get(self, target: str, headers: dict[str, str] | None = None) -> RawResponse:
        lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return read_response(self.sock)

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# Processes


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (granian's workers of a ``python -m server serve``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(found))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def socket_owner(local_port: int, server_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server end of our connection from ``local_port``."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, remote = cols[1], cols[2]
            if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == local_port:
                inode = cols[9]
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    if os.readlink(fd) == wanted:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def wait_until(predicate: Any, what: str, timeout: float = 15.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)
