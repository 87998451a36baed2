"""Airborne names and the keys they map to, for both processes.

The document lets organisations and applications be named freely (``"Acme Mobile"``,
``"ShopApp"``). Our storage and the public route need keys: an application's key (the project key,
``^[a-z0-9-_.]+$`` like every project's) is derived from its name by :func:`application_key`,
and every lookup by name (``x-application``, ``/release/{organisation}/{application}``) goes
through the same function, so ``ShopApp``, ``shopapp`` and ``SHOPAPP`` are one application and
two names that map to one key cannot both exist (the second is a 409). A name that is already a
valid key maps to itself, so applications created before names were free keep their keys.

Organisation names are their own key (unique, compared exactly). Neither kind of name may hold a
``/`` (a public release URL's path segments would become ambiguous: Starlette decodes ``%2F``
before routing), a control character, or leading/trailing whitespace.
"""

from __future__ import annotations

import hashlib
import string

_KEY_CHARS = frozenset(string.ascii_lowercase + string.digits + "-_.")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an organisation or application (None: it can)."""
    if not name or name != name.strip():
        return "must not be empty or start or end with whitespace"
    if "/" in name:
        return "must not contain '/'"
    if any(not c.isprintable() for c in name):
        return "must not contain control characters"
    return None


def application_key(name: str) -> str:
    """The key of the application named ``name``: lowercase, every other character than
    ``[a-z0-9-_.]`` becomes ``-``; a name with non-ASCII characters gets a short digest of its
    case-folded form appended, so that names differing only there stay distinct."""
    lowered = name.lower()
    key = "".join(c if c in _KEY_CHARS else "-" for c in lowered)
    if not lowered.isascii():
        key += "-" + hashlib.sha256(name.casefold().encode()).hexdigest()[:8]
    return key


def release_key(organisation: str, application: str) -> str:
    """The LMDB ``releases`` key of an application, from its organisation and its name or key."""
    return f"{organisation}/{application_key(application)}"
