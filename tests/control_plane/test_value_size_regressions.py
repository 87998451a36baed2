"""Values too large for PostgreSQL's indexes: the 500s the control-plane suites found once they ran
on PostgreSQL (issue 19), now a 400 on both stores.

PostgreSQL holds an index entry of at most about 2.7 kB (``index row size … exceeds btree
maximum``), and text that does not compress (random characters) is stored as it is; SQLite has
no such limit, so these requests succeeded there and failed with a 500 on PostgreSQL:

* an ``Idempotency-Key`` of a few thousand characters (it is part of the idempotency table's
  primary key): now at most 255 characters, else a 400 naming the header;
* an Airborne ``file_path`` of 1024 characters of 3- or 4-byte UTF-8 (it is in two unique
  indexes): now at most 2048 bytes of UTF-8 as well as 1024 characters;
* any other value over the limit: the store's refusal (PostgreSQL's SQLSTATE 54000) is a 400 in
  the route's error shape, never a 500.
"""

from __future__ import annotations

import random

import pytest

from control_plane.dialect import INTEGRITY_ERRORS, value_too_large
from control_plane.store import Store
from tests.control_plane.airborne_support import make_app
from tests.control_plane.conftest import Api, assert_error
from tests.support.error_shapes import error_of


def incompressible(n: int, first: int = 0x21, last: int = 0x7E, seed: int = 1) -> str:
    """``n`` random characters from ``first``..``last`` (PostgreSQL cannot compress them)."""
    r = random.Random(seed)
    return "".join(chr(r.randint(first, last)) for _ in range(n))


def test_a_long_idempotency_key_is_a_400(api: Api) -> None:
    owner = api.signup()
    api.organisation(owner, "acme")
    headers = {**owner.org("acme"), "Idempotency-Key": incompressible(6000)}
    r = api.client.post("/v1/projects", json={"name": "Shop", "key": "shop"}, headers=headers)
    body = assert_error(r, 400, "validation_failed")
    assert error_of(body)["details"][0]["field"] == "idempotency-key"
    # The longest key kept works, and replays.
    headers["Idempotency-Key"] = incompressible(255)
    first = api.client.post("/v1/projects", json={"name": "Shop", "key": "shop"}, headers=headers)
    assert first.status_code == 201, first.text
    again = api.client.post("/v1/projects", json={"name": "Shop", "key": "shop"}, headers=headers)
    assert again.status_code == 201 and again.json()["_id"] == first.json()["_id"]


@pytest.mark.parametrize("chars", [683, 1024])
def test_a_file_path_over_2048_bytes_is_a_400(api: Api, chars: int) -> None:
    app = make_app(api)
    path = incompressible(chars, 0x4E00, 0x9FFF)  # 3 bytes each in UTF-8
    r = api.client.post(
        "/file", json={"file_path": path, "url": "https://cdn.example.com/x", "tag": "latest"}, headers=app.h
    )
    body = assert_error(r, 400, "validation_failed", shape="airborne")
    assert error_of(body)["details"][0]["field"] == "file_path"


def test_a_file_path_of_2046_bytes_is_stored_and_found(api: Api) -> None:
    app = make_app(api)
    path = incompressible(682, 0x4E00, 0x9FFF)
    created = app.file(path, url="https://cdn.example.com/x")
    key = f"{path}@version:{created['version']}"
    headers = {**app.h, "Idempotency-Key": "k" * 255}  # the file key is in the idempotency row too
    r = api.client.patch(f"/file/{key}", json={"tag": "stable"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["file_path"] == path


def test_the_store_refusing_a_value_by_its_size_is_recognised(postgres_url: str) -> None:
    """What the API maps to a 400: PostgreSQL refusing an index entry over its limit."""
    insert = "INSERT INTO rate_buckets (limiter, key, tokens, at) VALUES ('test', ?, 1, 1)"
    store = Store(postgres_url)
    try:
        with pytest.raises(Exception) as refused, store.transaction() as db:
            db.execute(insert, (incompressible(6000),))
        assert value_too_large(refused.value)
        # Other refusals are not that.
        with pytest.raises(INTEGRITY_ERRORS) as duplicate, store.transaction() as db:
            db.execute(insert, ("a",))
            db.execute(insert, ("a",))
        assert not value_too_large(duplicate.value)
    finally:
        store.close()
