"""Download an Airborne file's URL to record its size and checksum (issue 14, bundle integrity).

The checksum is Airborne's: SHA-256 of the bytes as 64 lowercase hex digits (its server's
``download_and_checksum``). Only hosts on the configured allow-list are fetched
(``--file-fetch-hosts``; empty by default, so a fresh install makes no outbound request a user
chose): an entry is a host name (any port) or ``host:port``. The download is bounded by
``--file-fetch-max-bytes`` and, end to end, by ``--file-fetch-timeout`` seconds; redirects are not
followed (one could lead off the allow-list).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx


@dataclass(frozen=True)
class FetchPolicy:
    hosts: frozenset[str]
    max_bytes: int
    timeout: float

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or parts.scheme not in ("http", "https"):
            return False
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        return host in self.hosts or f"{host}:{port}" in self.hosts


@dataclass(frozen=True)
class Digest:
    size: int
    checksum: str


class FetchError(Exception):
    """The URL could not be downloaded within the policy; the message says why."""


def parse_hosts(text: str | None) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in (text or "").split(",") if h.strip())


async def fetch_digest(url: str, policy: FetchPolicy) -> Digest:
    """Size and SHA-256 of the body at ``url``; FetchError if it is not allowed, fails, is too
    large or takes longer than the policy's timeout."""
    if not policy.allows(url):
        raise FetchError("the URL's host is not on the control plane's fetch allow-list")
    try:
        return await asyncio.wait_for(_download(url, policy), policy.timeout)
    except TimeoutError:
        raise FetchError(f"the download took longer than {policy.timeout:g} s") from None
    except httpx.HTTPError as e:
        raise FetchError(f"the download failed: {type(e).__name__}") from None


async def _download(url: str, policy: FetchPolicy) -> Digest:
    sha = hashlib.sha256()
    size = 0
    async with (
        httpx.AsyncClient(timeout=policy.timeout, follow_redirects=False, trust_env=False) as client,
        client.stream("GET", url, headers={"User-Agent": "flagedge-control-plane"}) as response,
    ):
        if response.status_code != 200:
            raise FetchError(f"the URL answered HTTP {response.status_code}")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > policy.max_bytes:
            raise FetchError(f"the file is larger than {policy.max_bytes} bytes")
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > policy.max_bytes:
                raise FetchError(f"the file is larger than {policy.max_bytes} bytes")
            sha.update(chunk)
    if size == 0:
        raise FetchError("the file is empty")
    return Digest(size, sha.hexdigest())
