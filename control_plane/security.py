"""Secrets: password hashing (argon2id), JWTs (HS256), API and SDK key generation and hashing."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from contract import sdk_keys

_hasher = PasswordHasher()
# A real hash to verify against when the user does not exist, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("no-such-user-" + secrets.token_hex(8))

# An API key opens exactly one API, named by its prefix: ``fe_`` keys the admin API (up to their
# scope), ``sytwm_`` keys the shareyourthoughtswith.me API at /api/v1 (README, "API keys").
ADMIN_API = "admin"
SYTWM_API = "sytwm"
API_KEY_PREFIX = {
    (ADMIN_API, "read"): "fe_rk_",
    (ADMIN_API, "write"): "fe_wk_",
    (ADMIN_API, "submit"): "fe_sk_",
    (ADMIN_API, "admin"): "fe_ak_",
    (SYTWM_API, "submit"): "sytwm_sk_",
    (SYTWM_API, "read"): "sytwm_rk_",
}
_KEY_STARTS = ("fe_", "sytwm_")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def key_hash(secret: str) -> str:
    """SHA-256 hex of a high-entropy key: how API and SDK keys are stored and looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_api_key(scope: str, api: str = ADMIN_API) -> str:
    """A new secret of the given API and scope (its prefix says both); KeyError for a pair that
    does not exist."""
    return API_KEY_PREFIX[(api, scope)] + secrets.token_urlsafe(32)


def key_display_prefix(secret: str) -> str:
    """What lists show of a key: its kind prefix and four characters of the secret."""
    kind = next(p for p in API_KEY_PREFIX.values() if secret.startswith(p))
    return secret[: len(kind) + 4]


def looks_like_api_key(token: str) -> bool:
    """Whether a credential is meant as an API key (else it is taken for a JWT)."""
    return token.startswith(_KEY_STARTS)


def new_sdk_key(kind: sdk_keys.Kind, environment_type: str) -> str:
    """``client-…`` (publishable), ``server-…`` (secret) or ``mobile-…``; all longer than 22 chars."""
    return f"{sdk_keys.PREFIX[kind]}{environment_type[:4]}-{secrets.token_urlsafe(24)}"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "refresh_expires_in": self.refresh_expires_in,
        }


class Tokens:
    """Issues and checks HS256 JWTs. Only HS256 is accepted: ``alg: none`` and RS/HS confusion fail."""

    ALGORITHM = "HS256"

    def __init__(self, secret: str, access_ttl: int, refresh_ttl: int) -> None:
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def _encode(self, user_id: str, email: str, session_id: str, typ: str, ttl: int) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "email": email,
            "sid": session_id,
            "typ": typ,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=self.ALGORITHM)

    def issue(self, user_id: str, email: str, session_id: str) -> TokenPair:
        """Both tokens of one login session (``sid``): revoking the session refuses both."""
        return TokenPair(
            access_token=self._encode(user_id, email, session_id, "access", self.access_ttl),
            expires_in=self.access_ttl,
            refresh_token=self._encode(user_id, email, session_id, "refresh", self.refresh_ttl),
            refresh_expires_in=self.refresh_ttl,
        )

    def decode(self, token: str, typ: str) -> dict[str, Any] | None:
        """The claims of a valid, unexpired token of type ``typ`` with an email and a session,
        else ``None`` (tokens from before sessions existed carry no ``sid`` and are refused)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=[self.ALGORITHM], options={"require": ["exp", "sub", "typ", "sid"]}
            )
        except jwt.PyJWTError:
            return None
        if claims.get("typ") != typ or not claims.get("email") or not isinstance(claims.get("sid"), str):
            return None
        return claims
