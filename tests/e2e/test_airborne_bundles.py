"""Bundle integrity over the real control plane and edge (issue 14, item 5).

A local HTTP server on a free port plays the CDN. The control plane may fetch from it (allow-list
in ``FLAGEDGE_FILE_FETCH_HOSTS``, size and time bounds as flags) and records each file's size and
SHA-256; a file it may not fetch and whose size and checksum nobody sent stays pending, and a
release holding it cannot go live. On the code before issue 14 the first test fails: files got
no size or checksum unless the uploader sent them (every served checksum was ``""``).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from bench.processes import free_port, process
from tests.e2e.airborne_support import Owner, ok, sign_up

MAX_BYTES = 4096
TIMEOUT = 1.0
BUNDLE = {"/b/index.jsa": b"index " * 100, "/b/main.js": b"main();\n" * 50}


@dataclass
class Cdn:
    port: int
    requested: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def cdn() -> Iterator[Cdn]:
    state = Cdn(0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requested.append(self.path)
            if self.path == "/slow":
                time.sleep(TIMEOUT * 3)
            if self.path in BUNDLE or self.path in ("/big", "/slow"):
                body = BUNDLE.get(self.path, b"x" * (MAX_BYTES + 1))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # The control plane hangs up on /slow and /big: that is the point.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)
                return
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class System:
    admin: httpx.Client
    edge: httpx.Client
    owner: Owner


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, cdn: Cdn) -> Iterator[System]:
    data = tmp_path_factory.mktemp("data")
    cp_port, edge_port = free_port(), free_port()
    args = ["--file-fetch-max-bytes", str(MAX_BYTES), "--file-fetch-timeout", str(TIMEOUT)]
    with process(
        ["control_plane", "serve", "--data-dir", str(data), "--port", str(cp_port), *args],
        f"http://127.0.0.1:{cp_port}/health",
        data / "control_plane.log",
        env={"FLAGEDGE_FILE_FETCH_HOSTS": f"127.0.0.1:{cdn.port}"},
    ):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp_port}", timeout=30)
        owner = sign_up(admin)
        ok(admin.post("/organisations/create", json={"name": "cdn"}, headers=owner.headers("cdn")))
        with process(
            ["server", "serve", "--data-dir", str(data), "--port", str(edge_port)],
            f"http://127.0.0.1:{edge_port}/health",
            data / "edge.log",
        ):
            yield System(admin, httpx.Client(base_url=f"http://127.0.0.1:{edge_port}", timeout=30), owner)


def _app(s: System, name: str) -> dict[str, str]:
    ok(s.admin.post("/organisations/applications/create", json={"application": name}, headers=s.owner.headers("cdn")))
    return s.owner.headers("cdn", name)


def _file(s: System, h: dict[str, str], path: str, url: str, **extra: object) -> httpx.Response:
    return s.admin.post("/file", json={"file_path": path, "url": url, "tag": "v1", **extra}, headers=h)


def _error_field(r: httpx.Response) -> tuple[int, str, str]:
    body = r.json()
    err = body["error"] if isinstance(body["error"], dict) else body
    detail = err["details"][0]
    return r.status_code, detail["field"], detail["code"]


def test_files_are_measured_and_a_verified_release_goes_live(system: System, cdn: Cdn) -> None:
    h = _app(system, "verified")
    index = ok(_file(system, h, "index.jsa", cdn.url("/b/index.jsa")))
    sha = hashlib.sha256(BUNDLE["/b/index.jsa"]).hexdigest()
    assert (index["status"], index["size"], index["checksum"]) == ("ready", 600, sha)
    main = ok(
        _file(
            system,
            h,
            "main.js",
            cdn.url("/b/main.js"),
            size=400,
            checksum=hashlib.sha256(BUNDLE["/b/main.js"]).hexdigest().upper(),
        )
    )
    assert main["status"] == "ready" and main["checksum"] == hashlib.sha256(BUNDLE["/b/main.js"]).hexdigest()
    ok(
        system.admin.post(
            "/packages", json={"index": "index.jsa@tag:v1", "tag": "v1", "files": ["main.js@tag:v1"]}, headers=h
        )
    )
    release = ok(system.admin.post("/releases", json={}, headers=h))
    assert release["experiment"]["status"] == "CONCLUDED"  # the first release, verified: live at once
    assert release["package"]["index"]["checksum"] == sha
    version = ok(system.admin.get("/ready"))["publish"]["version"]
    r = system.edge.get("/release/cdn/verified", params={"waitForVersion": version})
    served = ok(r)
    assert served["package"]["index"] == cdn.url("/b/index.jsa")
    # Devices get each file's verified checksum and size (every served checksum was "" before).
    main_sha = hashlib.sha256(BUNDLE["/b/main.js"]).hexdigest()
    assert served["package"]["important"] == [
        {"url": cdn.url("/b/main.js"), "file_path": "main.js", "checksum": main_sha, "size": 400}
    ]
    # The control plane's port answers the same bytes.
    same = system.admin.get("/release/cdn/verified")
    assert (same.status_code, same.content, same.headers["etag"]) == (200, r.content, r.headers["etag"])


def test_fetch_failures_are_400_within_the_bounds(system: System, cdn: Cdn) -> None:
    h = _app(system, "failures")
    wrong = _file(system, h, "a.js", cdn.url("/b/main.js"), size=400, checksum="0" * 64)
    assert _error_field(wrong) == (400, "checksum", "checksum_mismatch")
    assert _error_field(_file(system, h, "big.js", cdn.url("/big"))) == (400, "url", "fetch_failed")
    assert "larger than 4096 bytes" in str(_file(system, h, "big.js", cdn.url("/big")).json())
    assert _error_field(_file(system, h, "gone.js", cdn.url("/missing"))) == (400, "url", "fetch_failed")
    started = time.monotonic()
    slow = _file(system, h, "slow.js", cdn.url("/slow"))
    assert _error_field(slow) == (400, "url", "fetch_failed")
    assert time.monotonic() - started < TIMEOUT + 1.5
    listed = ok(system.admin.get("/file/list", headers=h))
    assert listed["total"] == 0  # nothing that failed was saved


def test_a_release_with_unverified_files_cannot_go_live(system: System, cdn: Cdn) -> None:
    h = _app(system, "pending")
    before = len(cdn.requested)
    # "localhost" is not on the allow-list (only 127.0.0.1:<port> is): never fetched, stays pending.
    pending = ok(_file(system, h, "index.jsa", cdn.url("/b/index.jsa", host="localhost")))
    assert (pending["status"], pending["size"], pending["checksum"]) == ("pending", 0, "")
    assert len(cdn.requested) == before
    ok(system.admin.post("/packages", json={"index": "index.jsa@tag:v1", "tag": "v1", "files": []}, headers=h))
    release = ok(system.admin.post("/releases", json={}, headers=h))
    assert release["experiment"]["status"] == "CREATED"  # first release, but not verified: a draft
    rid = release["id"]
    for path, body in (
        (f"/releases/{rid}/ramp", {"traffic_percentage": 10}),
        (f"/releases/{rid}/conclude", {"chosen_variant": "experimental"}),
    ):
        r = system.admin.post(path, json=body, headers=h)
        assert r.status_code == 409, r.text
        assert "index.jsa@version:1" in r.text
    version = ok(system.admin.get("/ready"))["publish"]["version"]
    assert system.edge.get("/release/cdn/pending", params={"waitForVersion": version}).status_code == 404
    ok(system.admin.post(f"/releases/{rid}/conclude", json={"chosen_variant": "control"}, headers=h))


def test_unauthorised_callers_make_no_download(system: System, cdn: Cdn) -> None:
    _app(system, "quiet")
    before = len(cdn.requested)
    r = system.admin.post(
        "/file",
        json={"file_path": "x.js", "url": cdn.url("/b/main.js"), "tag": "v1"},
        headers={"x-organisation": "cdn", "x-application": "quiet"},
    )
    assert r.status_code == 401
    assert len(cdn.requested) == before
