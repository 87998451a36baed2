"""Airborne users: sign-up, login, refresh, the current user, OAuth refusal, brute-force limit."""

from __future__ import annotations

import time

import jwt

from tests.control_plane.conftest import Api, assert_error

SIGNUP = {"name": "ada", "password": "correct-horse", "first_name": "Ada", "last_name": "L", "email": "ada@example.com"}


def test_signup_returns_login_shape(api: Api) -> None:
    r = api.client.post("/users/create", json=SIGNUP)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"user_id", "organisations", "user_token"}
    assert body["organisations"] == []
    token = body["user_token"]
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] > 0 and token["refresh_expires_in"] > token["expires_in"]
    assert r.headers["x-request-id"]


def test_signup_validation_and_conflict(api: Api) -> None:
    body = assert_error(
        api.client.post("/users/create", json={**SIGNUP, "password": "short"}), 400, "validation_failed"
    )
    assert body["error"]["details"][0]["field"] == "password"
    missing = assert_error(api.client.post("/users/create", json={"name": "x"}), 400, "validation_failed")
    assert {d["field"] for d in missing["error"]["details"]} >= {"password", "email"}
    assert_error(api.client.post("/users/create", json={**SIGNUP, "extra": 1}), 400, "validation_failed")
    assert api.client.post("/users/create", json=SIGNUP).status_code == 200
    assert_error(api.client.post("/users/create", json={**SIGNUP, "name": "other"}), 409, "conflict")
    assert_error(api.client.post("/users/create", content=b"{nope"), 400, "validation_failed")


def test_login_and_current_user(api: Api) -> None:
    api.client.post("/users/create", json=SIGNUP)
    r = api.client.post("/users/login", json={"name": "ada", "password": "correct-horse"})
    assert r.status_code == 200
    token = r.json()["user_token"]["access_token"]
    me = api.client.get("/user", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and set(me.json()) == {"user_id", "organisations"}
    by_email = api.client.post("/users/login", json={"name": "ada@example.com", "password": "correct-horse"})
    assert by_email.status_code == 200
    assert_error(api.client.post("/users/login", json={"name": "ada", "password": "wrong-horse"}), 401, "unauthorized")
    assert_error(api.client.post("/users/login", json={"name": "nobody", "password": "x"}), 401, "unauthorized")


def test_refresh_token(api: Api) -> None:
    body = api.client.post("/users/create", json=SIGNUP).json()
    refresh = body["user_token"]["refresh_token"]
    r = api.client.post("/users/token/refresh", json={"refresh_token": refresh})
    assert r.status_code == 200 and r.json()["user_token"]["access_token"]
    # An access token is not a refresh token, and vice versa.
    access = body["user_token"]["access_token"]
    assert_error(api.client.post("/users/token/refresh", json={"refresh_token": access}), 401, "unauthorized")
    assert_error(api.client.get("/user", headers={"Authorization": f"Bearer {refresh}"}), 401, "unauthorized")


def test_bad_tokens_are_rejected(api: Api) -> None:
    user = api.signup()
    assert_error(api.client.get("/user"), 401, "unauthorized")
    assert_error(api.client.get("/user", headers={"Authorization": "Basic abc"}), 401, "unauthorized")
    claims = jwt.decode(user.token, options={"verify_signature": False})
    forged = {
        "none": jwt.encode(claims, key="", algorithm="none"),
        "wrong key": jwt.encode(claims, "not-the-secret-" + "y" * 32, algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": int(time.time()) - 10}, "test-secret-" + "x" * 32, algorithm="HS256"),
        "no email": jwt.encode({k: v for k, v in claims.items() if k != "email"}, "test-secret-" + "x" * 32),
        "tampered": user.token[:-4] + ("AAAA" if not user.token.endswith("AAAA") else "BBBB"),
    }
    for name, token in forged.items():
        r = api.client.get("/user", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, name


def test_oauth_is_not_supported(api: Api) -> None:
    assert_error(api.client.get("/users/oauth/url"), 400, "validation_failed")
    assert_error(api.client.post("/users/oauth/login", json={"code": "c"}), 400, "validation_failed")
    assert_error(api.client.post("/users/oauth/signup", json={"code": "c"}), 400, "validation_failed")
    body = api.client.get("/users/oauth/url").json()
    assert "does not support" in body["error"]["message"]


def test_login_brute_force_is_rate_limited(api: Api) -> None:
    api.client.post("/users/create", json=SIGNUP)
    # Five free failures, then the sixth makes this address wait before its next attempt.
    statuses = [
        api.client.post("/users/login", json={"name": "ada", "password": f"guess-{i}"}).status_code for i in range(6)
    ]
    assert statuses == [401] * 6
    limited = api.client.post("/users/login", json={"name": "ada", "password": "correct-horse"})
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1


def test_request_id_is_echoed(api: Api) -> None:
    r = api.client.get("/user", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["error"]["request_id"] == "abc-123"
    odd = api.client.get("/user", headers={"X-Request-Id": "bad id with spaces"})
    assert odd.headers["x-request-id"] != "bad id with spaces"
