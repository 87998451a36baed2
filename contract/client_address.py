"""The address of the client behind a request, seen through the reverse proxies the operator trusts.

Rate limits and login budgets are kept per client address. Behind a load balancer every request
arrives from the balancer's address, so without this one client crossing a limit would lock out
every other client; with a forged ``X-Forwarded-For`` believed from anyone, a client could pick
a fresh address per request and escape every limit. So the header is read only when the peer is
a configured trusted proxy (``--trusted-proxies``, addresses or CIDR networks), and then from the
right: each trusted hop appends the address it received from, so the first address from the
right that is not a trusted proxy is the client. Without trusted proxies, the peer address is
the client (the default: the edge and the control plane face clients directly).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1, ::1"`` → networks; ValueError naming a bad entry."""
    networks: list[Network] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR network: {item!r}") from None
    return tuple(networks)


class ClientAddress:
    """Callable: the client address of a request from its peer and ``X-Forwarded-For``."""

    def __init__(self, trusted: str | Iterable[Network] = "") -> None:
        self.trusted = parse_networks(trusted) if isinstance(trusted, str) else tuple(trusted)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def __call__(self, peer: str | None, forwarded_for: str | None) -> str:
        if not peer:
            return ""
        if not self.trusted or not forwarded_for or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        for hop in reversed(hops):
            if hop and not self._is_trusted(hop):
                # A malformed hop from a trusted proxy is still that client's identity: keying a
                # bucket by an odd string is harmless, and skipping it would let it be chosen.
                return hop[:64]
        # Every hop is a trusted proxy: the leftmost is as close to the client as we know.
        return next((hop[:64] for hop in hops if hop), peer)
