"""Slow and vanishing request bodies on the real control plane (granian, its own process here).

* ``--body-timeout`` (``FLAGEDGE_BODY_TIMEOUT``, default 30 s, 1 s here): a body that has not
  arrived in full by then is answered 408 in the error envelope, so a trickling client cannot
  hold a request of the one worker open for ever (granian has no body deadline of its own).
* a client that closes its connection mid-body is logged as one line, never as an error with a
  traceback (issue 11, item 7d: every such disconnect logged a ``ClientDisconnect`` traceback).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.processes import free_port, process
from tests.security.checks import assert_envelope
from tests.security.rawhttp import read_response, wait_until

BODY_TIMEOUT = 1.0


@dataclass
class ControlPlane:
    port: int
    log: Path


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    tmp = tmp_path_factory.mktemp("cp-bodies")
    port = free_port()
    log = tmp / "cp.log"
    args = ["control_plane", "serve", "--data-dir", str(tmp / "data"), "--port", str(port)]
    # Through the environment twin of --body-timeout (the flag's default comes from it).
    with process(args, f"http://127.0.0.1:{port}/health", log, env={"FLAGEDGE_BODY_TIMEOUT": str(BODY_TIMEOUT)}):
        yield ControlPlane(port, log)


def _partial_login(port: int) -> socket.socket:
    """A login whose body announces 100 bytes and sends 10."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = b"POST /users/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    sock.sendall(head + b"Content-Length: 100\r\n\r\n" + b'{"name": "')
    return sock


def test_a_slow_body_is_answered_408(control_plane: ControlPlane) -> None:
    started = time.monotonic()
    with _partial_login(control_plane.port) as sock:
        r = read_response(sock)
    took = time.monotonic() - started
    assert r.status == 408, r
    assert assert_envelope(r.body, r.status)["error"]["code"] == "request_timeout"
    assert BODY_TIMEOUT * 0.9 <= took < BODY_TIMEOUT + 3, took


def test_a_client_gone_mid_body_is_one_log_line(control_plane: ControlPlane) -> None:
    _partial_login(control_plane.port).close()
    wait_until(lambda: "went away while sending the body" in control_plane.log.read_text(), "the log line")
    time.sleep(0.3)  # anything else it would log about that request
    text = control_plane.log.read_text()
    assert "Traceback" not in text, text
    assert "ClientDisconnect" not in text, text
    assert text.count("went away while sending the body") == 1, text
