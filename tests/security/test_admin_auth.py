"""Admin authentication on the real control plane: JWTs and API keys.

* JWTs signed with the *right* secret but another algorithm (HS384, HS512), with ``alg: none``
  (any spelling), with an RS256 header over an HMAC signature, expired, not yet valid, tampered
  (payload or signature), of the wrong type (refresh as access), or for a user whose email no
  longer matches: 401 with the envelope, and no different message that would tell them apart.
* API keys: the scope is enforced (read cannot write, submit cannot see the admin API), a key
  works only in its organisation, and a revoked key fails on the very next request.

Also covered (in process): alg none / wrong key / expired / tampered / no email in
``tests/control_plane/routes/test_users.py::test_bad_tokens_are_rejected``; every route x every role and
API-key scope in ``tests/control_plane/test_authorization_matrix.py``; API keys cannot mint API
keys in ``tests/control_plane/routes/test_api_keys.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest

from tests.security.checks import assert_envelope, assert_error_body
from tests.security.conftest import World


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _handmade(header: dict[str, Any], claims: dict[str, Any], secret: str) -> str:
    signing = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + _b64(signature)


@pytest.fixture(scope="module")
def token_parts(world: World) -> tuple[str, dict[str, Any], str]:
    token = world.auth["Authorization"].removeprefix("Bearer ")
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    secret = (world.tmp / "a" / "jwt_secret").read_text().strip()
    return token, claims, secret


def _me(world: World, token: str) -> httpx.Response:
    return world.admin.get("/user", headers={"Authorization": f"Bearer {token}"})


def test_the_real_token_works(world: World, token_parts: tuple[str, dict[str, Any], str]) -> None:
    token, _, _ = token_parts
    assert _me(world, token).status_code == 200


def test_forged_tokens_are_rejected_alike(world: World, token_parts: tuple[str, dict[str, Any], str]) -> None:
    token, claims, secret = token_parts
    now = int(time.time())
    unsigned = _b64(json.dumps(claims).encode())
    head, payload, signature = token.split(".")
    other = json.loads(base64.urlsafe_b64decode(payload + "=="))
    other["sub"] = "someone-else"
    forged = {
        "HS384 with the right secret": jwt.encode(claims, secret, algorithm="HS384"),
        "HS512 with the right secret": jwt.encode(claims, secret, algorithm="HS512"),
        "alg none": _b64(b'{"alg":"none","typ":"JWT"}') + "." + unsigned + ".",
        "alg None": _b64(b'{"alg":"None","typ":"JWT"}') + "." + unsigned + ".",
        "alg NONE, signature kept": _b64(b'{"alg":"NONE"}') + "." + payload + "." + signature,
        "RS256 header over HMAC": _handmade({"alg": "RS256", "typ": "JWT"}, claims, secret),
        "no alg": _handmade({"typ": "JWT"}, claims, secret),
        "expired": jwt.encode({**claims, "exp": now - 5}, secret, algorithm="HS256"),
        "not yet valid": jwt.encode({**claims, "nbf": now + 3600}, secret, algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret, algorithm="HS256"),
        "refresh type": jwt.encode({**claims, "typ": "refresh"}, secret, algorithm="HS256"),
        "other email": jwt.encode({**claims, "email": "evil@ex.com"}, secret, algorithm="HS256"),
        "payload swapped, signature kept": head + "." + _b64(json.dumps(other).encode()) + "." + signature,
        "signature flipped": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "signature dropped": head + "." + payload + ".",
        "wrong secret": jwt.encode(claims, secret + "x", algorithm="HS256"),
        "garbage": "a.b.c",
        "huge": "x" * 20_000,
    }
    messages = set()
    for name, bad in forged.items():
        r = _me(world, bad)
        assert r.status_code == 401, (name, r.text)
        messages.add(assert_envelope(r.content, r.status_code)["error"]["message"])
    # One message for every kind of bad token (nothing says which check failed).
    assert messages == {"invalid or expired token"}, messages


def test_api_key_scopes_and_revocation(world: World) -> None:
    admin = world.admin

    def key(scope: str) -> tuple[str, str]:
        r = admin.post(
            "/organisations/acme/api-keys", json={"name": f"auth-{scope}", "scope": scope}, headers=world.auth
        )
        assert r.status_code == 201, r.text
        world.remember(r.json()["key"])
        return r.json()["id"], r.json()["key"]

    _, read = key("read")
    _, submit = key("submit")
    write_id, write = key("write")

    def call(method: str, path: str, k: str, body: Any = None) -> int:
        r = admin.request(method, path, json=body, headers={"X-API-Key": k, "x-organisation": "acme"})
        return r.status_code

    assert call("GET", "/v1/projects/shop", read) == 200
    assert call("PATCH", "/v1/projects/shop", read, {"description": "read key"}) == 403
    assert call("GET", "/v1/projects/shop", submit) == 404  # the admin API is invisible to it
    assert call("PATCH", "/v1/projects/shop/features/plan", write, {"description": "by write key"}) == 200
    assert call("DELETE", "/v1/projects/shop", write) == 403  # deleting a project needs admin
    assert call("POST", "/organisations/acme/api-keys", write, {"name": "x", "scope": "admin"}) == 403
    assert call("GET", "/v1/projects/demo-app", read) == 404  # another organisation's project
    # Revocation: the very next request fails.
    r = admin.delete(f"/organisations/acme/api-keys/{write_id}", headers=world.auth)
    assert r.status_code == 200, r.text
    r = admin.get("/v1/projects/shop", headers={"X-API-Key": write, "x-organisation": "acme"})
    assert r.status_code == 401  # in DevCycle's shape: /v1/projects is a DevCycle route
    assert assert_error_body(r.content, r.status_code, "devcycle")["code"] == "unauthorized"
    assert call("GET", "/v1/projects/shop", write[:-1] + ("A" if write[-1] != "A" else "B")) == 401
