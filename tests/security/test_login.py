"""Login brute force against the real control plane, from several client addresses.

The designed behaviour (``control_plane/ratelimit.py``, ``LoginGuard``), all checked before the
password is verified (a locked address is refused even the right password, or the answer would
tell a guesser which one was right); over a limit, 429 with an integer ``Retry-After`` and the
error envelope:

* per client address, at most ``login_attempts_per_minute`` (10) attempts in any 60 s;
* per account and address, exponential backoff after 5 wrong passwords (1 s, 2 s, 4 s, …);
* per account, after 20 wrong passwords from anywhere within 15 min, backoff from the first
  failure of any address; an address with a clean history still logs in at once.

Client addresses: all of 127.0.0.0/8 is loopback on Linux, so each test binds its own source
addresses and never locks out 127.0.0.1, which the rest of the suite logs in from.

Found and fixed here: attempts were counted per spelling of the login (``name:ada`` and
``name:ada@ex.com`` were two budgets for one account), so alternating name and email doubled a
guesser's rate; a sign-up could take another user's email as its *name*, making one login match
two accounts; and the per-account budget was shared by every address, so ten wrong passwords from
anywhere locked the owner out (issue 11, item 7a). Also covered: the in-process limit in
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
FREE_FAILURES = 5
ALARM_FAILURES = 20
_addresses = itertools.count(0)


def _from(world: World) -> httpx.Client:
    """A client on a fresh loopback source address (127.0.1.N, 127.0.2.N, ...)."""
    n = next(_addresses)
    transport = httpx.HTTPTransport(local_address=f"127.0.{1 + n // 250}.{2 + n % 250}")
    return httpx.Client(base_url=f"http://127.0.0.1:{world.cp_port}", transport=transport, timeout=30)


def _login(client: httpx.Client, name: str, password: str) -> httpx.Response:
    return client.post("/users/login", json={"name": name, "password": password})


def _assert_locked(r: httpx.Response) -> int:
    """The response is the 429 envelope; its Retry-After in seconds."""
    assert r.status_code == 429, r.text
    assert assert_envelope(r.content, r.status_code)["error"]["code"] == "rate_limited"
    retry = r.headers["retry-after"]
    assert retry.isdigit() and 1 <= int(retry) <= 61
    return int(retry)


def test_guessing_never_locks_the_owner_out(world: World) -> None:
    world.signup("victim", "victim-password-1")
    attacker = _from(world)
    statuses = []
    for i in range(LIMIT + 1):
        statuses.append(_login(attacker, "victim", f"guess-{i}").status_code)
        if statuses[-1] == 429:
            break
    # The attacker's address is slowed down (before 10 guesses), even with the right password...
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}, statuses
    _assert_locked(_login(attacker, "victim", "victim-password-1"))
    # ...but the owner, from an address with a clean history, logs in by either spelling.
    assert _login(_from(world), "victim", "victim-password-1").status_code == 200
    assert _login(_from(world), "VICTIM@EX.COM", "victim-password-1").status_code == 200


def test_failures_back_off_exponentially(world: World) -> None:
    world.signup("grace", "grace-password-1")
    guesser = _from(world)
    assert [_login(guesser, "grace", f"g-{i}").status_code for i in range(FREE_FAILURES)] == [401] * FREE_FAILURES
    waits = []
    for i in range(3):
        assert _login(guesser, "grace", f"late-{i}").status_code == 401
        waits.append(_assert_locked(_login(guesser, "grace", "grace-password-1")))
        time.sleep(waits[-1] + 0.1)
    assert waits == [1, 2, 4], waits
    # Waited out, the right password works (the 9th attempt: under the address's 10 a minute).
    assert _login(guesser, "grace", "grace-password-1").status_code == 200


def test_name_and_email_share_one_budget(world: World) -> None:
    world.signup("carol", "carol-password-1")
    spellings = ["carol", "carol@ex.com"]
    guesser = _from(world)
    statuses = [_login(guesser, spellings[i % 2], f"guess-{i}").status_code for i in range(FREE_FAILURES + 1)]
    assert statuses == [401] * (FREE_FAILURES + 1)
    for spelling in spellings:
        _assert_locked(_login(guesser, spelling, "carol-password-1"))


def test_a_distributed_attack_slows_every_guesser_but_not_the_owner(world: World) -> None:
    world.signup("heidi", "heidi-password-1")
    guessers = [_from(world) for _ in range(ALARM_FAILURES)]
    assert [_login(g, "heidi", "guess").status_code for g in guessers] == [401] * ALARM_FAILURES
    # Under attack, one more wrong password is enough for an address to wait.
    assert _login(guessers[0], "heidi", "guess-2").status_code == 401
    _assert_locked(_login(guessers[0], "heidi", "heidi-password-1"))
    assert _login(_from(world), "heidi", "heidi-password-1").status_code == 200


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
    for i in range(FREE_FAILURES):  # more would make the known user's address back off
        for label, client, name in (("known", known, "frank"), ("unknown", unknown, f"ghost-{i}")):
            t0 = time.perf_counter()
            assert _login(client, name, f"wrong-{i}").status_code == 401
            samples[label].append(time.perf_counter() - t0)
    a, b = statistics.median(samples["known"]), statistics.median(samples["unknown"])
    print(f"login medians: existing user {a * 1000:.1f} ms, missing user {b * 1000:.1f} ms")
    assert min(a, b) > 0.3 * max(a, b), samples
