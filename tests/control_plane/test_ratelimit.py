"""``control_plane/ratelimit.py``: the login guard's per-pair backoff, its reset and the alarm."""

from __future__ import annotations

import pytest

from control_plane.errors import ApiError
from control_plane.ratelimit import LoginGuard


def _refused(guard: LoginGuard, account: str, address: str) -> bool:
    try:
        guard.check(account, address)
    except ApiError as e:
        assert e.status == 429 and e.headers["Retry-After"].isdigit()
        return True
    return False


def test_backoff_is_per_pair_and_a_success_resets_it() -> None:
    guard = LoginGuard(100, free_failures=1)
    guard.failed("user:a", "1.1.1.1")
    assert not _refused(guard, "user:a", "1.1.1.1")
    guard.failed("user:a", "1.1.1.1")
    assert _refused(guard, "user:a", "1.1.1.1")
    assert not _refused(guard, "user:a", "2.2.2.2")  # another address
    assert not _refused(guard, "user:b", "1.1.1.1")  # another account
    guard.succeeded("user:a", "1.1.1.1")
    assert not _refused(guard, "user:a", "1.1.1.1")


def test_the_alarm_makes_the_first_failure_count_but_spares_clean_addresses() -> None:
    guard = LoginGuard(100, free_failures=5, alarm_failures=3)
    for address in ("1.0.0.1", "1.0.0.2", "1.0.0.3"):
        guard.failed("user:a", address)
    assert _refused(guard, "user:a", "1.0.0.3")
    assert not _refused(guard, "user:a", "9.9.9.9")


def test_an_address_has_a_budget_across_accounts() -> None:
    guard = LoginGuard(2)
    guard.check("user:a", "1.1.1.1")
    guard.check("user:b", "1.1.1.1")
    with pytest.raises(ApiError):
        guard.check("user:c", "1.1.1.1")
