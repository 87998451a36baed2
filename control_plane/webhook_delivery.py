"""Webhook delivery: sends the outbox rows :mod:`control_plane.webhook_events` writes.

Guarantee: **at least once, with an event id**. A change that was acknowledged has its outbox
rows committed with it; the deliverer POSTs each one until the receiver answers 2xx or
``max_attempts`` attempts have failed. A process killed mid-delivery leaves the row claimed until
its lease ends; then any deliverer (this one restarted, or another replica) sends it again, with
the same ``X-FlagEdge-Event-Id``, which receivers use to drop duplicates.

Each request carries:

* ``X-FlagEdge-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes, keyed with the
  webhook's secret (returned once, when the webhook is created; stored sealed with the
  :class:`~control_plane.key_vault.KeyVault`, bound to the webhook's id);
* ``X-FlagEdge-Event-Id`` (and the same value as ``Idempotency-Key``): the event id, the same on
  every attempt;
* ``X-FlagEdge-Event``: the event names, comma-separated; ``X-FlagEdge-Delivery-Attempt``: 1, 2, …

Claiming: a row is taken by setting ``claimed_until`` (a lease of ``timeout + LEASE_MARGIN``
seconds) in one UPDATE that only matches unclaimed or expired rows, so two deliverers on one
database never send a row at the same time. Retries back off exponentially (``base * 2^(n-1)``,
capped, with jitter); a 2xx ends the row as ``delivered``, running out of attempts as ``failed``.
Every attempt is recorded (``webhook_attempts``) and readable through the API.

SSRF: targets that resolve to loopback, private, link-local, multicast or reserved addresses are
refused unless ``--webhook-allow-private``; redirects are not followed (a redirect to an internal
address would bypass the check). The address is checked when the request is made; the check and
httpx's own resolution are separate look-ups, so a DNS answer that changes between them is not
caught (an egress proxy is the complete answer where that matters).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import random
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from control_plane.dialect import STORAGE_ERRORS, Row
from control_plane.key_vault import KeyVault
from control_plane.settings import Settings
from control_plane.store import Store, new_id, now_iso

log = logging.getLogger("control_plane.webhooks")

LEASE_MARGIN = 5.0
BATCH = 20
POLL_INTERVAL = 0.2
MAX_ERROR = 500


@dataclass(frozen=True)
class DeliveryPolicy:
    allow_private: bool = False
    timeout: float = 10.0
    max_attempts: int = 12
    backoff_base: float = 2.0
    backoff_cap: float = 3600.0

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones (full-ish jitter)."""
        delay = min(self.backoff_cap, self.backoff_base * (2 ** max(attempts - 1, 0)))
        return float(delay * random.uniform(0.5, 1.0))


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        settings.webhook_allow_private,
        settings.webhook_timeout,
        settings.webhook_max_attempts,
        settings.webhook_backoff_base,
        settings.webhook_backoff_cap,
    )


def iso_in(seconds: float) -> str:
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def url_problem(url: str, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a webhook target, from the URL alone (None: it can, so far)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host"
    if parts.username or parts.password:
        return "must not carry credentials"
    if allow_private:
        return None
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback targets are refused (--webhook-allow-private)"
    with contextlib.suppress(ValueError):
        if _refused_address(host):
            return "loopback, private and link-local targets are refused (--webhook-allow-private)"
    return None


async def _resolved_problem(url: str, allow_private: bool) -> str | None:
    problem = url_problem(url, allow_private)
    if problem is not None or allow_private:
        return problem
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as e:
        return f"cannot resolve {parts.hostname}: {e}"
    for info in infos:
        if _refused_address(str(info[4][0])):
            return f"{parts.hostname} resolves to {info[4][0]}, a refused address (--webhook-allow-private)"
    return None


class Deliverer:
    """Runs in the control plane that publishes (one event loop); see the module doc."""

    def __init__(self, store: Store, policy: DeliveryPolicy, vault: KeyVault) -> None:
        self.store = store
        self.policy = policy
        self.vault = vault
        self.lease = policy.timeout + LEASE_MARGIN
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=policy.timeout, trust_env=False)

    async def run(self) -> None:
        while True:
            try:
                rows = self._claim()
            except STORAGE_ERRORS:
                log.exception("claiming webhook deliveries failed; trying again")
                rows = []
            if rows:
                await asyncio.gather(*(self._deliver(r) for r in rows))
            else:
                await asyncio.sleep(POLL_INTERVAL)

    def _claim(self) -> list[Row]:
        now = now_iso()
        # A serialized write transaction (the default), not a bare UPDATE: under PostgreSQL's READ
        # COMMITTED the ``IN (SELECT … LIMIT)`` is not re-checked against a concurrent claim, so
        # two replicas would take the same rows; after the write lock, this one sees theirs.
        with self.store.transaction() as db:
            claimed = db.execute(
                "UPDATE webhook_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN ("
                " SELECT id FROM webhook_outbox WHERE status = 'pending' AND next_attempt_at <= ?"
                " AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY next_attempt_at LIMIT ?)"
                " RETURNING id",
                (iso_in(self.lease), now, now, BATCH),
            ).fetchall()
            if not claimed:
                return []
            ids = [r["id"] for r in claimed]
            marks = ", ".join("?" for _ in ids)
            return list(
                db.execute(
                    "SELECT o.*, w.url, w.secret FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id"
                    f" WHERE o.id IN ({marks}) ORDER BY o.created_at",
                    ids,
                ).fetchall()
            )

    async def _deliver(self, row: Row) -> None:
        body = row["payload"].encode()
        started = time.monotonic()
        status: int | None = None
        error: str | None = await _resolved_problem(row["url"], self.policy.allow_private)
        secret = self.vault.open(row["secret"], row["webhook_id"])
        if secret is None and error is None:
            # Sealed under another key-encryption secret (or damaged): an unsigned or wrongly
            # signed request would be worse than none; the attempt fails and is recorded.
            error = "the webhook's secret cannot be read with this key-encryption secret"
        if error is None and secret is not None:
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "flagedge-webhooks/1",
                "X-FlagEdge-Event-Id": row["id"],
                "Idempotency-Key": row["id"],
                "X-FlagEdge-Event": row["events"],
                "X-FlagEdge-Delivery-Attempt": str(row["attempts"]),
                "X-FlagEdge-Signature": signature(secret, body),
            }
            try:
                # The answer's body is not read: only its status counts.
                async with self._client.stream("POST", row["url"], content=body, headers=headers) as response:
                    status = response.status_code
                if not 200 <= status < 300:
                    error = f"the receiver answered {status}"
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {e}"[:MAX_ERROR]
        self._record(row, status, error, int((time.monotonic() - started) * 1000))

    def _record(self, row: Row, status: int | None, error: str | None, duration_ms: int) -> None:
        now = now_iso()
        attempts = int(row["attempts"])
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO webhook_attempts (id, outbox_id, webhook_id, attempt, at, status_code, error, duration_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (new_id(), row["id"], row["webhook_id"], attempts, now, status, error, duration_ms),
            )
            if error is None:
                db.execute(
                    "UPDATE webhook_outbox SET status = 'delivered', delivered_at = ?, claimed_until = NULL,"
                    " last_status = ?, last_error = NULL WHERE id = ?",
                    (now, status, row["id"]),
                )
                return
            final = attempts >= self.policy.max_attempts
            db.execute(
                "UPDATE webhook_outbox SET status = ?, next_attempt_at = ?, claimed_until = NULL, last_status = ?,"
                " last_error = ? WHERE id = ?",
                (
                    "failed" if final else "pending",
                    iso_in(self.policy.backoff(attempts)),
                    status,
                    error,
                    row["id"],
                ),
            )
        if final:
            log.warning("webhook event %s failed after %d attempts: %s", row["id"], attempts, error)

    async def close(self) -> None:
        await self._client.aclose()
