"""Airborne's public release route on the control plane's port: the values this control plane
publishes to its LMDB ``releases`` table, answered through the same code as the edge
(:mod:`contract.airborne_release`), so the document's single base URL serves devices too.

Each request reads the application's value from LMDB (one key, a read transaction), so the
answer is the published state, never a half-written one; the decoded value and its compiled
release are kept while the stored bytes stay the same. A value that cannot be read is 503 with
Retry-After, as on the edge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import evaluator
from contract.airborne_names import release_key
from contract.airborne_release import UNSERVABLE_RETRY_AFTER, Answer, Refused, ReleaseCache, answer
from contract.errors import code_for
from contract.framing import CorruptValue, decode
from control_plane.errors import ApiError

log = logging.getLogger("control_plane.published_releases")

Read = Callable[[str], bytes | None]


class PublishedReleases:
    """Answers ``GET /release/{organisation}/{application}`` from the published LMDB values."""

    def __init__(self, read: Read) -> None:
        self.read = read
        self.cache = ReleaseCache(evaluator)
        self.decoded: dict[str, tuple[bytes, Any]] = {}

    def _value(self, key: str) -> Any:
        raw = self.read(key)
        if raw is None:
            self.decoded.pop(key, None)
            self.cache.forget(key)
            raise ApiError(404, f"no application {key}")
        known = self.decoded.get(key)
        if known is not None and known[0] == raw:
            return known[1]
        try:
            value = decode(raw)
        except CorruptValue as e:
            log.error("the published release data of %s cannot be read (%s)", key, e)
            raise ApiError(
                503, f"the release data of {key} cannot be served", headers={"Retry-After": UNSERVABLE_RETRY_AFTER}
            ) from None
        self.decoded[key] = (raw, value)
        return value

    def answer(self, organisation: str, application: str, headers: Mapping[str, str], toss: str | None) -> Answer:
        key = release_key(organisation, application)
        value = self._value(key)
        try:
            return answer(self.cache, key, value, headers, toss)
        except Refused as r:
            # The edge's EdgeError details: the offending field with the status's code.
            details = [{"field": r.field, "code": code_for(r.status), "message": r.message}] if r.field else []
            raise ApiError(r.status, r.message, details=details, headers=r.headers) from None
