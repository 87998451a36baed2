"""ETags and the ``If-None-Match`` check, for every cached answer of both processes.

An ETag is the quoted fingerprint of the answer's bytes; the fingerprint function (the
evaluator's XXH3-128) is passed in, since this package never imports the evaluator.
"""

from __future__ import annotations

from collections.abc import Callable


def etag_of(body: bytes, fingerprint: Callable[[bytes], str]) -> str:
    return '"' + fingerprint(body) + '"'


def not_modified(sent: str | None, etag: str, *, wildcard: bool = True) -> bool:
    """Whether ``If-None-Match: sent`` names ``etag`` (weak or strong); ``*`` matches any answer
    unless ``wildcard`` is off (the Reflag routes have never honoured it)."""
    if sent is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in sent.split(",")}
    return etag in tags or (wildcard and "*" in tags)
