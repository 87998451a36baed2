"""OIDC login (issue 14, item 7) against a real OpenID Provider: panva/oidc-provider, run with
node from ``tests/e2e/oidc_provider`` (installed from its committed lock file), and the real
control plane configured with it through its ``FLAGEDGE_OIDC_*`` variables.

The test plays the browser: it follows the authorization URL the control plane gives, signs in
and consents on the provider's own pages, stops at the redirect URL, and hands the code and state
to ``/users/oauth/login`` or ``/signup``. The session that comes back must work on an admin route.
Forged and replayed logins (another state, a used code, a nonce the control plane did not issue)
are refused in Airborne's error shape, and the client secret never reaches the log. Before item 7
every OAuth route answered 400 "not supported".
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest

from bench.processes import command, free_port, process
from tests.control_plane.conftest import assert_error
from tests.e2e.airborne_support import ok
from tests.e2e.sdk_support import npm_fixture

PROVIDER = Path(__file__).parent / "oidc_provider"
CLIENT_ID = "flagedge-admin"
CLIENT_SECRET = "s3cret-" + secrets.token_hex(16)
_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post">(.*?)</form>', re.S)


@dataclass
class Oidc:
    admin: httpx.Client
    issuer: str
    redirect: str
    log: Path

    def start(self, **params: str) -> tuple[str, str]:
        """``(auth_url, state)`` from the control plane."""
        body = ok(self.admin.get("/users/oauth/url", params=params))
        return body["auth_url"], body["state"]

    def authorize(self, auth_url: str, login: str) -> dict[str, str]:
        """Drive the provider as a browser: its login form (any password), its consent form, until
        it redirects to our redirect URL; that URL's query parameters."""
        with httpx.Client(timeout=10, follow_redirects=False) as browser:
            r = browser.get(auth_url)
            for _ in range(12):
                if r.is_redirect:
                    target = urljoin(str(r.url), r.headers["location"])
                    if target.startswith(self.redirect):
                        return {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
                    r = browser.get(target)
                    continue
                assert r.status_code == 200, r.text
                form = _FORM.search(r.text)
                assert form is not None, r.text
                action, fields = form.groups()
                prompt = re.search(r'name="prompt" value="([^"]+)"', fields)
                assert prompt is not None, fields
                data = {"prompt": prompt.group(1)}
                if data["prompt"] == "login":
                    data |= {"login": login, "password": "any"}
                r = browser.post(urljoin(str(r.url), action), data=data)
        raise AssertionError("the provider never redirected back")

    def code(self, login: str, **params: str) -> tuple[str, str]:
        """A fresh ``(code, state)`` for ``login``."""
        auth_url, state = self.start(**params)
        back = self.authorize(auth_url, login)
        assert back["state"] == state and back["iss"] == self.issuer
        return back["code"], state


def _with(url: str, **replace: str) -> str:
    """``url`` with some query parameters replaced."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | replace
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oidc]:
    node = shutil.which("node")
    assert node, "node is required for this end-to-end test"
    npm_fixture(PROVIDER, "oidc-provider")
    data = tmp_path_factory.mktemp("data")
    op_port, cp_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{op_port}"
    # Where a dashboard would receive the code; the test reads it from the provider's redirect.
    redirect = f"http://127.0.0.1:{cp_port}/oauth/callback"
    with command(
        [node, "provider.mjs"],
        f"{issuer}/.well-known/openid-configuration",
        data / "provider.log",
        env={"PORT": str(op_port), "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET, "REDIRECT_URI": redirect},
        cwd=PROVIDER,
    ):
        env = {
            "FLAGEDGE_OIDC_ISSUER": issuer,
            "FLAGEDGE_OIDC_CLIENT_ID": CLIENT_ID,
            "FLAGEDGE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "FLAGEDGE_OIDC_REDIRECT_URL": redirect,
            "FLAGEDGE_OIDC_SIGNUP": "true",
        }
        log = data / "control_plane.log"
        with process(
            ["control_plane", "serve", "--data-dir", str(data), "--port", str(cp_port)],
            f"http://127.0.0.1:{cp_port}/health",
            log,
            env=env,
        ):
            yield Oidc(httpx.Client(base_url=f"http://127.0.0.1:{cp_port}", timeout=30), issuer, redirect, log)


def _bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['user_token']['access_token']}"}


def test_signup_login_and_the_session_on_an_admin_route(oidc: Oidc) -> None:
    auth_url, state = oidc.start()
    query = parse_qs(urlsplit(auth_url).query)
    assert auth_url.startswith(oidc.issuer + "/auth?")
    assert query["code_challenge_method"] == ["S256"] and query["state"] == [state]
    assert query["client_id"] == [CLIENT_ID] and query["nonce"][0] and query["code_challenge"][0]
    assert "openid" in query["scope"][0].split()

    # An identity with no account cannot log in; signup creates one.
    code, state = oidc.code("alice")
    assert_error(oidc.admin.post("/users/oauth/login", json={"code": code, "state": state}), 401, "no_account")
    code, state = oidc.code("alice")
    signed_up = ok(oidc.admin.post("/users/oauth/signup", json={"code": code, "state": state}))
    auth = _bearer(signed_up)
    assert ok(oidc.admin.post("/organisations/create", json={"name": "Alice Org"}, headers=auth))["name"] == "Alice Org"
    me = ok(oidc.admin.get("/user", headers=auth))
    assert me["user_id"] == signed_up["user_id"] and [o["name"] for o in me["organisations"]] == ["Alice Org"]
    # A second signup for the same identity is a conflict; login finds the account.
    code, state = oidc.code("alice")
    assert_error(oidc.admin.post("/users/oauth/signup", json={"code": code, "state": state}), 409, "conflict")
    code, state = oidc.code("alice")
    logged_in = ok(oidc.admin.post("/users/oauth/login", json={"code": code, "state": state}))
    assert logged_in["user_id"] == signed_up["user_id"]
    assert ok(oidc.admin.get("/user", headers=_bearer(logged_in)))["organisations"][0]["name"] == "Alice Org"
    # That account has no password: password login stays refused for it.
    refused = oidc.admin.post("/users/login", json={"name": "alice@example.com", "password": ""})
    assert refused.status_code in (400, 401)

    # Password login stays the default, and an OIDC login with the same verified email links to it.
    created = ok(
        oidc.admin.post(
            "/users/create",
            json={
                "name": "bob",
                "password": "correct-horse",
                "first_name": "B",
                "last_name": "B",
                "email": "bob@example.com",
            },
        )
    )
    ok(oidc.admin.post("/users/login", json={"name": "bob", "password": "correct-horse"}))
    code, state = oidc.code("bob", offline="false")
    linked = ok(oidc.admin.post("/users/oauth/login", json={"code": code, "state": state}))
    assert linked["user_id"] == created["user_id"]
    assert ok(oidc.admin.post("/organisations/create", json={"name": "Bob Org"}, headers=_bearer(linked)))


def test_forged_and_replayed_logins_are_refused(oidc: Oidc) -> None:
    # Another state than the one the code was issued with: a state we never issued is refused
    # before the code is spent, and the right one still works.
    code, state = oidc.code("carol")
    assert_error(
        oidc.admin.post("/users/oauth/signup", json={"code": code, "state": secrets.token_urlsafe(32)}),
        400,
        "invalid_state",
        shape="airborne",
    )
    assert_error(oidc.admin.post("/users/oauth/signup", json={"code": code}), 400, "invalid_state", shape="airborne")
    ok(oidc.admin.post("/users/oauth/signup", json={"code": code, "state": state}))

    # Replays: the same code and state again (the state was consumed), and the same code with a
    # fresh state of ours (the provider refuses a used code, and its PKCE challenge is another).
    assert_error(
        oidc.admin.post("/users/oauth/login", json={"code": code, "state": state}),
        400,
        "invalid_state",
        shape="airborne",
    )
    _, fresh = oidc.start()
    assert_error(
        oidc.admin.post("/users/oauth/login", json={"code": code, "state": fresh}),
        400,
        "invalid_grant",
        shape="airborne",
    )
    # A code issued for another login's PKCE challenge cannot be exchanged with this state.
    stolen, _ = oidc.code("carol")
    _, other = oidc.start()
    assert_error(
        oidc.admin.post("/users/oauth/login", json={"code": stolen, "state": other}),
        400,
        "invalid_grant",
        shape="airborne",
    )

    # A nonce the control plane did not issue for this state (an authorization request tampered
    # on its way to the provider): the ID token carries it and is refused.
    auth_url, state = oidc.start()
    back = oidc.authorize(_with(auth_url, nonce=secrets.token_urlsafe(32)), "carol")
    assert back["state"] == state
    refused = oidc.admin.post("/users/oauth/login", json={"code": back["code"], "state": state})
    assert_error(refused, 401, "invalid_nonce", shape="airborne")

    # Malformed input is a 400 in the same shape.
    assert_error(
        oidc.admin.post("/users/oauth/login", json={"state": state}), 400, "validation_failed", shape="airborne"
    )


def test_the_client_secret_never_reaches_the_log(oidc: Oidc) -> None:
    code, state = oidc.code("dave")
    assert_error(oidc.admin.post("/users/oauth/login", json={"code": code, "state": state}), 401, "no_account")
    text = oidc.log.read_text()
    assert CLIENT_SECRET not in text and code not in text and state not in text
