"""Login sessions on the real control plane: refresh tokens rotate, sessions can be revoked.

Every login starts a session whose id (``sid``) both of its tokens carry (``sessions`` table,
``control_plane/schema/0006_sessions.sql``; only a hash of the current refresh token is kept):

* a refresh answers a new refresh token and the one used is refused afterwards; using a rotated
  one again revokes the session (someone else holds its tokens): its newest tokens stop too;
* ``POST /users/logout`` revokes the caller's session: its access and refresh tokens stop;
* ``POST /users/password`` revokes every session of the user and starts a new one.

Issue 11, item 7e: before, a refresh token could be replayed for its whole 30 days and nothing
ended a session. Logins come from their own loopback addresses (the login limit is per address).
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from tests.security.checks import assert_envelope
from tests.security.conftest import World

_addresses = itertools.count(2)


def _client(world: World) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=f"127.0.9.{next(_addresses)}")
    return httpx.Client(base_url=f"http://127.0.0.1:{world.cp_port}", transport=transport, timeout=30)


def _login(client: httpx.Client, name: str, password: str) -> dict[str, Any]:
    r = client.post("/users/login", json={"name": name, "password": password})
    assert r.status_code == 200, r.text
    token: dict[str, Any] = r.json()["user_token"]
    return token


def _refresh(client: httpx.Client, refresh_token: str) -> httpx.Response:
    return client.post("/users/token/refresh", json={"refresh_token": refresh_token})


def _me(client: httpx.Client, token: dict[str, Any]) -> int:
    r = client.get("/user", headers={"Authorization": f"Bearer {token['access_token']}"})
    if r.status_code != 200:
        assert assert_envelope(r.content, r.status_code)["error"]["code"] == "unauthorized"
    return r.status_code


def _remember(world: World, *tokens: dict[str, Any]) -> None:
    for token in tokens:
        world.remember(token["access_token"], token["refresh_token"])


def test_refresh_rotates_and_reuse_revokes_the_session(world: World) -> None:
    world.signup("ivan", "ivan-password-1")
    client = _client(world)
    first = _login(client, "ivan", "ivan-password-1")
    r = _refresh(client, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()["user_token"]
    _remember(world, first, second)
    assert second["refresh_token"] != first["refresh_token"]
    assert _me(client, second) == 200
    # The rotated token is refused, and presenting it ends the session: the newest tokens too.
    assert _refresh(client, first["refresh_token"]).status_code == 401
    assert _refresh(client, second["refresh_token"]).status_code == 401
    assert _me(client, second) == 401


def test_logout_revokes_the_session_only(world: World) -> None:
    world.signup("judy", "judy-password-1")
    client = _client(world)
    laptop, phone = _login(client, "judy", "judy-password-1"), _login(client, "judy", "judy-password-1")
    _remember(world, laptop, phone)
    r = client.post("/users/logout", headers={"Authorization": f"Bearer {laptop['access_token']}"})
    assert r.status_code == 204, r.text
    assert _me(client, laptop) == 401
    assert _refresh(client, laptop["refresh_token"]).status_code == 401
    assert _me(client, phone) == 200


def test_a_password_change_revokes_every_session(world: World) -> None:
    world.signup("mike", "mike-password-1")
    client = _client(world)
    laptop, phone = _login(client, "mike", "mike-password-1"), _login(client, "mike", "mike-password-1")
    r = client.post(
        "/users/password",
        json={"current_password": "mike-password-1", "new_password": "mike-password-2"},
        headers={"Authorization": f"Bearer {laptop['access_token']}"},
    )
    assert r.status_code == 200, r.text
    fresh = r.json()["user_token"]
    _remember(world, laptop, phone, fresh)
    world.remember("mike-password-2")
    for old in (laptop, phone):
        assert _me(client, old) == 401
        assert _refresh(client, old["refresh_token"]).status_code == 401
    assert _me(client, fresh) == 200
    assert client.post("/users/login", json={"name": "mike", "password": "mike-password-1"}).status_code == 401
    _remember(world, _login(client, "mike", "mike-password-2"))
