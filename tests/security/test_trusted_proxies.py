"""Client addresses behind a reverse proxy (``--trusted-proxies``), with the real processes.

Behind a load balancer every request comes from the balancer's address: one client crossing a
per-address limit (event intake on the edge, login on the control plane) would lock out every
other client. With the balancer's address trusted, ``X-Forwarded-For`` names the client, read
from the right; from any other peer the header is ignored, so a client cannot pick a fresh
address per request to escape a limit.

Here 127.0.0.1 plays the balancer (trusted) and 127.0.9.9 a client reaching the servers directly.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from bench.processes import bootstrap_project, free_port
from tests.reliability.support import control_plane, edge, ready, wait_until

BALANCER, DIRECT = "127.0.0.1", "127.0.9.9"
EDGE_ENV = {
    "FLAGEDGE_EDGE_WORKERS": "1",
    "FLAGEDGE_EDGE_SHED_QUEUE_DELAY": "0",
    "FLAGEDGE_EDGE_INTAKE_RATE_PER_ADDRESS": "1",  # bursts of 2 requests
    "FLAGEDGE_TRUSTED_PROXIES": f"{BALANCER}/32, 10.0.0.0/8",
}
EVENT = {"event": "clicked", "userId": "u1"}


def _client(url: str, address: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address=address))


def _event(client: httpx.Client, key: str, forwarded_for: str) -> int:
    r = client.post("/event", params={"publishableKey": key}, json=EVENT, headers={"X-Forwarded-For": forwarded_for})
    return r.status_code


def _login(client: httpx.Client, password: str, forwarded_for: str) -> int:
    r = client.post(
        "/users/login", json={"name": "owner", "password": password}, headers={"X-Forwarded-For": forwarded_for}
    )
    return r.status_code


def test_limits_follow_the_client_behind_a_trusted_proxy(tmp_path: Path) -> None:
    data = tmp_path / "host"
    data.mkdir()
    cp, ep = free_port(), free_port()
    trusted = ("--trusted-proxies", f"{BALANCER}/32")
    with control_plane(data, cp, *trusted), httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30) as admin:
        _, keys = bootstrap_project(admin)
        owner = {"name": "owner", "password": "owner-pass-1", "first_name": "O", "last_name": "W"}
        r = admin.post("/users/create", json={**owner, "email": "owner@ex.com"})
        assert r.status_code == 200, r.text
        with edge(data, ep, env=EDGE_ENV):
            url = f"http://127.0.0.1:{ep}"
            wait_until(lambda: ready(url)[0] == 200, "edge ready")
            balancer, direct = _client(url, BALANCER), _client(url, DIRECT)

            # Edge intake: one client behind the balancer floods and is limited; another client
            # behind the same balancer is not. A forged leftmost entry changes nothing.
            noisy = [_event(balancer, keys["client"], f"1.1.1.{i}, 198.51.100.1, 10.0.0.7") for i in range(6)]
            assert noisy[-1] == 429 and noisy.count(202) + noisy.count(200) <= 3, noisy
            assert _event(balancer, keys["client"], "198.51.100.2") in (200, 202)
            # A direct client cannot escape its limit by sending a new X-Forwarded-For each time.
            direct_statuses = [_event(direct, keys["client"], f"203.0.113.{i}") for i in range(6)]
            assert direct_statuses[-1] == 429, direct_statuses

        # Control plane login: guesses from one client behind the balancer lock out that client
        # only; the owner behind the same balancer logs in at once.
        cp_balancer = _client(f"http://127.0.0.1:{cp}", BALANCER)
        guesses = [_login(cp_balancer, f"wrong-{i}", "198.51.100.66") for i in range(12)]
        assert guesses[-1] == 429 and set(guesses[:-1]) <= {401, 429}, guesses
        assert _login(cp_balancer, "owner-pass-1", "198.51.100.66") == 429
        assert _login(cp_balancer, "owner-pass-1", "198.51.100.77") == 200
        cp_direct = _client(f"http://127.0.0.1:{cp}", DIRECT)
        direct_guesses = [_login(cp_direct, f"wrong-{i}", f"203.0.113.{i}") for i in range(12)]
        assert direct_guesses[-1] == 429, direct_guesses
