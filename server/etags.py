"""ETags of the edge's answers and the ``If-None-Match`` check, shared by every cached route."""

from __future__ import annotations

import evaluator


def etag_of(body: bytes) -> str:
    # XXH3-128: a tenth of a SHA-2 pass over a 30 kB answer, and ETags need no secrecy.
    return '"' + evaluator.fingerprint(body) + '"'


def not_modified(sent: str | None, etag: str, *, wildcard: bool = True) -> bool:
    """Whether ``If-None-Match: sent`` names ``etag`` (weak or strong); ``*`` matches any answer
    unless ``wildcard`` is off (the Reflag routes have never honoured it)."""
    if sent is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in sent.split(",")}
    return etag in tags or (wildcard and "*" in tags)
