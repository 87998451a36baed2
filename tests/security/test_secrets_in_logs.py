"""Secrets never reach a log, and are not stored in plaintext.

Against the suite's real processes (control plane, two edges, sync, redis-server; each logs to a
file, stdout and stderr together): sign up, log in (right and wrong passwords), refresh tokens,
create and revoke API keys, create, rotate and invalidate SDK keys, make SDK requests with keys in
the query and in headers (valid, revoked, mistyped, the wrong class), and trigger errors (bad
JSON, bad tokens, oversized bodies, rate limits). Then no password, JWT (nor its signature), JWT
signing secret, API key or SDK key (nor the part of it after its displayed prefix) handled
anywhere in the suite (``World.secrets``) appears in any log file. The data directories (SQLite,
LMDB, event spool) and every Redis value hold no API key, SDK key, password or token either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.security.conftest import World

PREFIX_LENGTH = 20  # control_plane/routes/devcycle/sdk_keys.py: shown in lists and the audit log
API_PREFIX_LENGTH = 10  # control_plane/routes/api_keys.py


def _exercise(world: World) -> None:
    admin, edge = world.admin, world.edge
    password = "logger-password-9f8e7d"
    auth = world.signup("logger", password)
    world.remember(password)
    ok = admin.post("/users/login", json={"name": "logger", "password": password})
    assert ok.status_code == 200
    world.remember(ok.json()["user_token"]["access_token"], ok.json()["user_token"]["refresh_token"])
    assert admin.post("/users/login", json={"name": "logger", "password": password + "-wrong"}).status_code == 401
    assert admin.post("/users/login", json={"name": password, "password": password}).status_code == 401
    refreshed = admin.post("/users/token/refresh", json={"refresh_token": ok.json()["user_token"]["refresh_token"]})
    assert refreshed.status_code == 200
    world.remember(refreshed.json()["user_token"]["access_token"], refreshed.json()["user_token"]["refresh_token"])
    assert admin.post("/organisations/create", json={"name": "logs"}, headers=auth).status_code == 200
    org = {**auth, "x-organisation": "logs"}
    assert admin.post("/v1/projects", json={"name": "L", "key": "logs"}, headers=org).status_code == 201
    keys = world.environment("logs", "prod", org)
    api = admin.post("/organisations/logs/api-keys", json={"name": "ci", "scope": "write"}, headers=auth)
    assert api.status_code == 201
    api_key = api.json()["key"]
    world.remember(api_key)
    assert admin.get("/v1/projects/logs", headers={"X-API-Key": api_key, "x-organisation": "logs"}).status_code == 200
    assert admin.delete(f"/organisations/logs/api-keys/{api.json()['id']}", headers=auth).status_code == 200
    assert admin.get("/v1/projects", headers={"Authorization": f"Bearer {api_key}"}).status_code == 401
    rotated = admin.post("/v1/projects/logs/environments/prod/keys", json={"client": True}, headers=org)
    assert rotated.status_code == 200
    world.remember(*(k["key"] for kind in rotated.json()["sdkKeys"].values() for k in kind if "key" in k))
    # SDK traffic: keys in the query and in headers, right and wrong, before and after revocation.
    client, server = keys["client"], keys["server"]
    for port in (world.edge_port, world.edge_b_port):
        base = f"http://127.0.0.1:{port}"
        httpx.get(f"{base}/features/evaluated", params={"publishableKey": client, "context.user.id": "u1"})
        httpx.get(f"{base}/features", params={"publishableKey": server})
        httpx.get(f"{base}/features", headers={"Authorization": f"Bearer {server}"})
        httpx.get(f"{base}/features", headers={"Authorization": f"Bearer {client}"})
        httpx.get(f"{base}/features/evaluated", params={"publishableKey": client + "typo"})
        httpx.get(f"{base}/features/evaluated", headers={"Authorization": f"Bearer {api_key}"})
        httpx.post(f"{base}/ofrep/v1/evaluate/flags", headers={"X-API-Key": server}, json={"context": {}})
        httpx.post(f"{base}/ofrep/v1/evaluate/flags", headers={"X-API-Key": server}, content=b"{bad json")
        httpx.post(f"{base}/event", params={"publishableKey": client}, json={"event": "e", "userId": "u1"})
        httpx.post(f"{base}/user", headers={"Authorization": f"Bearer {client}", "Idempotency-Key": server}, json={})
        httpx.post(f"{base}/bulk", params={"publishableKey": client}, content=b"x" * (2 << 20))
    r = admin.put(f"/v1/projects/logs/environments/prod/keys/{client}/invalidate", headers=org)
    assert r.status_code == 200, r.text
    edge.get("/features/evaluated", params={"publishableKey": client})
    # Errors on the control plane.
    admin.post("/v1/projects", content=b"{not json", headers=org)
    admin.get("/user", headers={"Authorization": f"Bearer {ok.json()['user_token']['access_token']}x"})
    admin.get("/user", headers={"Authorization": f"Bearer {server}"})
    admin.post("/users/create", json={"name": "logger", "password": password, "first_name": "a", "last_name": "b",
                                      "email": "logger@ex.com"})  # fmt: skip
    admin.post("/v1/projects", content=b"{" + b" " * (2 << 20) + b"}", headers=org)


def _needles(world: World) -> dict[str, str]:
    """Each secret, and for keys with a public prefix also the part after it (never displayed)."""
    needles: dict[str, str] = {}
    for secret in world.secrets:
        needles[secret] = secret
        if secret.startswith(("client-", "server-", "mobile-")):
            needles[secret[PREFIX_LENGTH:]] = secret
        elif secret.startswith("fe_"):
            needles[secret[API_PREFIX_LENGTH:]] = secret
        elif secret.count(".") == 2 and secret.startswith("eyJ"):
            needles[secret.rsplit(".", 1)[1]] = secret  # a JWT's signature
    return {needle: secret for needle, secret in needles.items() if len(needle) >= 8}


def test_no_secret_in_any_log(world: World) -> None:
    _exercise(world)
    logs = {path: path.read_bytes() for path in world.logs if path.exists()}
    logs |= {p: p.read_bytes() for p in world.tmp.rglob("*.log") if p not in logs}
    # These are the real logs, with what each process says on start.
    assert b"control plane listening" in logs[world.logs[0]]
    assert b"edge listening" in logs[world.logs[1]] and b"edge listening" in logs[world.logs[2]]
    assert len(world.secrets) >= 20
    leaks = [
        f"{path.name}: {secret[:12]}..."
        for needle, secret in _needles(world).items()
        for path, text in logs.items()
        if needle.encode() in text
    ]
    assert leaks == []


def _redis_value(redis: Any, key: bytes) -> bytes:
    """Everything a Redis key holds, as bytes (strings, hashes, streams, lists, sets)."""
    kind = redis.type(key)
    parts: list[bytes]
    if kind == b"string":
        parts = [redis.get(key) or b""]
    elif kind == b"hash":
        parts = [k + v for k, v in redis.hgetall(key).items()]
    elif kind == b"stream":
        parts = [k + v for _, entry in redis.xrange(key) for k, v in entry.items()]
    elif kind == b"list":
        parts = list(redis.lrange(key, 0, -1))
    elif kind == b"set":
        parts = list(redis.smembers(key))
    elif kind == b"zset":
        parts = list(redis.zrange(key, 0, -1))
    else:
        raise AssertionError(f"unexpected Redis type {kind!r} of {key!r}")
    return b"\n".join(parts)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name not in ("jwt_secret", "key_encryption_secret")]


def test_no_secret_stored_in_plaintext(world: World) -> None:
    """SQLite (with its WAL), LMDB and the event spool of both hosts, and every Redis value. The
    JWT signing secret lives in ``<data-dir>/jwt_secret`` and the key-encryption secret in
    ``<data-dir>/key_encryption_secret`` (mode 0600), and nowhere else; SDK keys kept for admins
    are AES-GCM ciphertext."""
    blobs = {str(p): p.read_bytes() for host in ("a", "b") for p in _files(world.tmp / host)}
    redis = world.redis.client()
    try:
        for key in redis.scan_iter(count=1000):
            blobs[f"redis {key!r}"] = _redis_value(redis, key)
    finally:
        redis.close()
    assert any("control_plane.sqlite3" in name for name in blobs) and any("data.mdb" in name for name in blobs)
    leaks = [
        f"{name}: {secret[:12]}..."
        for needle, secret in _needles(world).items()
        for name, blob in blobs.items()
        if needle.encode() in blob
    ]
    assert leaks == []
