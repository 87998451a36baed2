"""ETags of the edge's answers and the ``If-None-Match`` check, shared by every cached route
(the rule itself lives in :mod:`contract.etags`, which the control plane serves with too)."""

from __future__ import annotations

import evaluator
from contract import etags
from contract.etags import not_modified

__all__ = ["etag_of", "not_modified"]


def etag_of(body: bytes) -> str:
    # XXH3-128: a tenth of a SHA-2 pass over a 30 kB answer, and ETags need no secrecy.
    return etags.etag_of(body, evaluator.fingerprint)
