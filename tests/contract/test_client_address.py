"""contract.client_address: X-Forwarded-For is believed only from trusted proxies, from the right."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.client_address import ClientAddress, parse_networks


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    address = ClientAddress("")
    assert address("203.0.113.5", "198.51.100.1") == "203.0.113.5"
    assert address(None, "198.51.100.1") == ""


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    address = ClientAddress("10.0.0.0/8")
    assert address("203.0.113.5", "198.51.100.1") == "203.0.113.5"


def test_the_first_untrusted_hop_from_the_right_is_the_client() -> None:
    address = ClientAddress("10.0.0.0/8, 127.0.0.1")
    # The client forged the leftmost entry; the balancer (10.0.0.2) appended the real one.
    assert address("10.0.0.2", "1.2.3.4, 198.51.100.7") == "198.51.100.7"
    assert address("127.0.0.1", "198.51.100.7, 10.0.0.3") == "198.51.100.7"
    assert address("10.0.0.2", None) == "10.0.0.2"
    assert address("10.0.0.2", "10.0.0.9, 10.0.0.3") == "10.0.0.9"


def test_ipv6_and_bad_entries() -> None:
    address = ClientAddress("::1, fd00::/8")
    assert address("::1", "2001:db8::1") == "2001:db8::1"
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_networks("10.0.0.0/8, not-an-ip")


@given(st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=6), st.ip_addresses(v=4).map(str))
def test_a_client_behind_a_trusted_proxy_cannot_choose_another_clients_address(forged: list[str], real: str) -> None:
    """Whatever a client puts in the header, the trusted balancer's appended hop decides."""
    address = ClientAddress("10.255.255.254/32")
    if real == "10.255.255.254":
        return
    assert address("10.255.255.254", ", ".join([*forged, real])) == real
