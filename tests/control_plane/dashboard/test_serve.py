"""The dashboard's static files as the control plane serves them: where, with which content
types, caching and Content-Security-Policy; the vendored files are the npm tarballs' bytes
(VENDORED.md); every module the page imports exists."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from control_plane.dashboard.serve import STATIC
from tests.control_plane.conftest import Api, assert_error

VENDORED = STATIC.parent / "VENDORED.md"


def test_redirects_to_the_dashboard(api: Api) -> None:
    for path in ("/", "/dashboard"):
        r = api.client.get(path, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (307, "/dashboard/")


def test_index_with_a_csp_that_allows_exactly_its_import_map(api: Api) -> None:
    r = api.client.get("/dashboard/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache" and r.headers["etag"]
    csp = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
    inline = re.findall(r'<script type="importmap">(.*?)</script>', r.text, re.S)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert csp["script-src"] == f"'self' 'sha256-{digest}'"
    assert csp["default-src"] == "'none'" and csp["connect-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert r.headers["x-content-type-options"] == "nosniff"
    # No other inline script, no inline event handler: the CSP would refuse them.
    assert len(re.findall(r"<script(?![^>]*\bsrc=)", r.text)) == 1
    assert not re.search(r"<[^>]+\son[a-z]+=", r.text, re.I)


def test_modules_are_javascript_vendor_files_immutable_app_files_revalidated(api: Api) -> None:
    page = api.client.get("/dashboard/").text
    imports = re.findall(r'"(\./vendor/[^"]+)"', page)
    assert len(imports) == 3
    for path in imports:
        r = api.client.get("/dashboard/" + path[2:])
        assert r.status_code == 200, path
        assert r.headers["content-type"] == "text/javascript; charset=utf-8"
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    app = api.client.get("/dashboard/js/main.js")
    assert (
        app.headers["content-type"] == "text/javascript; charset=utf-8" and app.headers["cache-control"] == "no-cache"
    )
    again = api.client.get("/dashboard/js/main.js", headers={"if-none-match": app.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == "no-cache"
    css = api.client.get("/dashboard/app.css")
    assert css.headers["content-type"].startswith("text/css")


def test_a_missing_file_is_404_and_no_path_leaves_the_static_folder(api: Api) -> None:
    # In the API's error envelope, like any other path that is not there.
    assert_error(api.client.get("/dashboard/js/nope.js"), 404, "not_found")
    assert api.client.get("/dashboard/../control_plane/settings.py").status_code == 404
    assert api.client.get("/dashboard/%2e%2e/__init__.py").status_code == 404


def test_vendored_files_are_the_recorded_bytes() -> None:
    recorded = dict(
        (path, digest) for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+)$", VENDORED.read_text(), re.M)
    )
    files = {str(p.relative_to(STATIC / "vendor")): p for p in (STATIC / "vendor").glob("*/*")}
    assert set(recorded) == set(files)
    for name, path in files.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == recorded[name], name


def _relative_imports(path: Path) -> list[str]:
    return re.findall(r'^\s*(?:import|export)\s[^"]*?from\s+"(\.{1,2}/[^"]+)"', path.read_text(), re.M)


def test_every_relative_import_of_the_page_exists() -> None:
    modules = sorted((STATIC / "js").rglob("*.js"))
    assert len(modules) >= 10
    for module in modules:
        for target in _relative_imports(module):
            assert (module.parent / target).resolve().is_file(), f"{module.name} imports missing {target}"
