"""Login brute force against the real control plane, from several client addresses.

The designed behaviour (``control_plane/routes/users.py``, ``control_plane/ratelimit.py``): at most
``login_attempts_per_minute`` (10) attempts per account and per client address in any 60 s,
counted before the password is checked; over it, 429 with an integer ``Retry-After`` and the
error envelope, and the correct password is refused too while locked (otherwise the limit would
tell a guesser which password was right).

Client addresses: all of 127.0.0.0/8 is loopback on Linux, so each test binds its own source
addresses and never locks out 127.0.0.1, which the rest of the suite logs in from.

Found and fixed here: attempts were counted per spelling of the login (``name:ada`` and
``name:ada@ex.com`` were two budgets for one account), so alternating name and email doubled a
guesser's rate; and a sign-up could take another user's email as its *name*, making one login
match two accounts. Also covered: the in-process limit in
``tests/control_plane/routes/test_users.py::test_login_brute_force_is_rate_limited``.
"""

from __future__ import annotations

import itertools
import statistics
import time

import httpx

from tests.security.checks import assert_envelope
from tests.security.conftest import World

LIMIT = 10
_addresses = itertools.count(20)


def _from(world: World) -> httpx.Client:
    """A client on a fresh loopback source address (127.0.0.N)."""
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{next(_addresses)}")
    return httpx.Client(base_url=f"http://127.0.0.1:{world.cp_port}", transport=transport, timeout=30)


def _login(client: httpx.Client, name: str, password: str) -> httpx.Response:
    return client.post("/users/login", json={"name": name, "password": password})


def _assert_locked(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert assert_envelope(r.content, r.status_code)["error"]["code"] == "rate_limited"
    retry = r.headers["retry-after"]
    assert retry.isdigit() and 1 <= int(retry) <= 61


def test_wrong_passwords_lock_the_account_even_for_the_right_one(world: World) -> None:
    world.signup("victim", "victim-password-1")
    attacker = _from(world)
    statuses = [_login(attacker, "victim", f"guess-{i}").status_code for i in range(LIMIT)]
    assert statuses == [401] * LIMIT
    _assert_locked(_login(attacker, "victim", "victim-password-1"))
    # The account is locked whatever address the next attempt comes from, and by either spelling.
    _assert_locked(_login(_from(world), "victim", "victim-password-1"))
    _assert_locked(_login(_from(world), "victim@ex.com", "victim-password-1"))
    _assert_locked(_login(_from(world), "VICTIM@EX.COM", "victim-password-1"))
    # Other accounts are not locked.
    world.signup("bystander", "bystander-password")
    assert _login(_from(world), "bystander", "bystander-password").status_code == 200


def test_name_and_email_share_one_budget(world: World) -> None:
    world.signup("carol", "carol-password-1")
    spellings = ["carol", "carol@ex.com"]
    statuses = [_login(_from(world), spellings[i % 2], f"guess-{i}").status_code for i in range(LIMIT)]
    assert statuses == [401] * LIMIT
    for spelling in spellings:
        _assert_locked(_login(_from(world), spelling, "carol-password-1"))


def test_one_address_is_limited_across_accounts(world: World) -> None:
    world.signup("dave", "dave-password-1")
    sprayer = _from(world)
    statuses = [_login(sprayer, f"nobody-{i}", "password").status_code for i in range(LIMIT)]
    assert statuses == [401] * LIMIT
    _assert_locked(_login(sprayer, "dave", "dave-password-1"))
    assert _login(_from(world), "dave", "dave-password-1").status_code == 200


def test_a_name_cannot_be_another_users_email(world: World) -> None:
    world.signup("erin", "erin-password-1")
    r = world.admin.post(
        "/users/create",
        json={
            "name": "erin@ex.com",
            "password": "mallory-pass",
            "first_name": "M",
            "last_name": "M",
            "email": "m@x.io",
        },
    )
    assert r.status_code == 409, r.text
    r = world.admin.post(
        "/users/create",
        json={"name": "mal", "password": "mallory-pass", "first_name": "M", "last_name": "M", "email": "ERIN@ex.com"},
    )
    assert r.status_code == 409, r.text
    assert _login(_from(world), "erin@ex.com", "erin-password-1").status_code == 200


def test_unknown_and_known_users_take_the_same_time(world: World) -> None:
    """A wrong password for an existing user and any password for a missing one both run one
    argon2 verification (against a dummy hash for the missing user), so timing does not tell
    which names exist. Without the dummy hash the missing user would answer ~100x faster."""
    world.signup("frank", "frank-password-1")
    known, unknown = _from(world), _from(world)
    samples: dict[str, list[float]] = {"known": [], "unknown": []}
    for i in range(8):
        for label, client, name in (("known", known, "frank"), ("unknown", unknown, f"ghost-{i}")):
            t0 = time.perf_counter()
            assert _login(client, name, f"wrong-{i}").status_code == 401
            samples[label].append(time.perf_counter() - t0)
    a, b = statistics.median(samples["known"]), statistics.median(samples["unknown"])
    print(f"login medians: existing user {a * 1000:.1f} ms, missing user {b * 1000:.1f} ms")
    assert min(a, b) > 0.3 * max(a, b), samples
