"""Who is calling and what they may do: principals, roles, and scoped look-ups.

Every project or organisation a route touches is looked up *through* the caller's memberships,
so another organisation's resources are indistinguishable from missing ones (404 either way).
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.airborne_names import application_key
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, forbidden, not_found, unauthorized
from control_plane.security import ADMIN_API, Tokens, key_hash, looks_like_api_key, same
from control_plane.store import Store, now_iso

ROLES = ("read", "write", "admin", "owner")
RANK = {role: i for i, role in enumerate(ROLES)}
# The most an API key of each scope may do on the admin API.
SCOPE_CEILING = {"read": "read", "write": "write", "admin": "owner", "submit": None}


@dataclass(frozen=True)
class Principal:
    user_id: str
    email: str
    # Set for API keys: the one organisation the key works in, and its scope.
    api_key_id: str | None = None
    api_key_org: str | None = None
    scope: str | None = None
    # The one API the key opens (security.API_KEY_PREFIX): "admin" for fe_ keys, "sytwm" for the
    # /api/v1 keys. None for a JWT, which opens the admin API only.
    api: str | None = None
    # Set for JWTs: the login session the token belongs to (logout revokes it).
    session_id: str | None = None

    @property
    def id(self) -> str:
        return f"key:{self.api_key_id}" if self.api_key_id else f"user:{self.user_id}"

    def effective_role(self, organisation_id: str, member_role: str) -> str | None:
        if self.api_key_id is None:
            return member_role
        if organisation_id != self.api_key_org or self.api != ADMIN_API:
            return None
        ceiling = SCOPE_CEILING.get(self.scope or "")
        if ceiling is None:
            return None
        return member_role if RANK[member_role] <= RANK[ceiling] else ceiling


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or of a bare ``Authorization: <token>`` (one
    word, no scheme) as the DevCycle CLI sends it (its ``buildHeaders``); other schemes are none."""
    if not authorization:
        return None
    if " " not in authorization.strip():
        return authorization.strip()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(store: Store, tokens: Tokens, authorization: str | None, x_api_key: str | None) -> Principal:
    """The caller from a Bearer JWT or API key (or ``X-API-Key``); 401 without one, 401 if invalid."""
    token = bearer_token(authorization) or (x_api_key.strip() if x_api_key else None)
    if not token:
        raise unauthorized()
    if looks_like_api_key(token):
        return _api_key(store, token)
    claims = tokens.decode(token, "access")
    if claims is None:
        raise unauthorized("invalid or expired token")
    # The token's session must still be live: logout and password changes revoke it.
    user = store.one(
        "SELECT u.id, u.email FROM users u JOIN sessions s ON s.user_id = u.id"
        " WHERE u.id = ? AND s.id = ? AND s.revoked_at IS NULL",
        (claims["sub"], claims["sid"]),
    )
    if user is None or user["email"] != claims["email"]:
        raise unauthorized("invalid or expired token")
    return Principal(user["id"], user["email"], session_id=claims["sid"])


def _api_key(store: Store, token: str) -> Principal:
    """The live key ``token`` is, looked up by its hash on every request (revocation is immediate)."""
    hashed = key_hash(token)
    row = store.one(
        "SELECT k.id, k.key_hash, k.scope, k.api, k.organisation_id, k.last_used_at, u.id AS user_id, u.email"
        " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ? AND k.revoked_at IS NULL",
        (hashed,),
    )
    if row is None or not same(row["key_hash"], hashed):
        raise unauthorized("invalid or revoked API key")
    now = now_iso()
    # At most one write a minute per key: a key that takes telemetry at a high rate would otherwise
    # cost a committed (fsynced) transaction per request just to say when it was last used.
    if row["last_used_at"] is None or row["last_used_at"][:16] != now[:16]:
        with store.transaction() as db:
            db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, row["id"]))
    return Principal(row["user_id"], row["email"], row["id"], row["organisation_id"], row["scope"], row["api"])


@dataclass(frozen=True)
class KeyAccess:
    """A route of an API that only its own API keys open (no JWT, no key of another API): the API
    (``security.API_KEY_PREFIX``) and the key scopes that pass."""

    api: str
    scopes: tuple[str, ...]


def admit(principal: Principal, keys: KeyAccess | None) -> None:
    """403 unless the caller's credential opens the route: admin routes (``keys`` None) take JWTs
    and admin-API keys; a ``keys`` route takes that API's keys of the listed scopes."""
    if keys is None:
        if principal.api not in (None, ADMIN_API):
            raise forbidden(f"a {principal.api} API key does not open the admin API")
        return
    if principal.api != keys.api:
        raise forbidden(f"this route takes a {keys.api} API key")
    if principal.scope not in keys.scopes:
        raise forbidden(f"this route takes a {' or '.join(keys.scopes)} key, not a {principal.scope} key")


def require(role: str | None, needed: str) -> None:
    if role is None or RANK[role] < RANK[needed]:
        raise forbidden(f"requires {needed} access")


@dataclass(frozen=True)
class OrgAccess:
    id: str
    name: str
    role: str


@dataclass(frozen=True)
class ProjectAccess:
    id: str
    key: str
    name: str
    organisation_id: str
    organisation_name: str
    role: str


def org_by_name(db: Connection, principal: Principal, name: str, needed: str = "read") -> OrgAccess:
    row = db.execute(
        "SELECT o.id, o.name, m.role FROM organisations o JOIN memberships m ON m.organisation_id = o.id "
        "WHERE o.name = ? AND m.user_id = ?",
        (name, principal.user_id),
    ).fetchone()
    role = principal.effective_role(row["id"], row["role"]) if row else None
    if row is None or role is None:
        raise not_found("organisation")
    require(role, needed)
    return OrgAccess(row["id"], row["name"], role)


def _project(row: Row | None, principal: Principal, needed: str) -> ProjectAccess:
    role = principal.effective_role(row["organisation_id"], row["role"]) if row else None
    if row is None or role is None:
        raise not_found("project")
    require(role, needed)
    return ProjectAccess(row["id"], row["key"], row["name"], row["organisation_id"], row["org_name"], role)


_PROJECT_SQL = (
    "SELECT p.id, p.key, p.name, p.organisation_id, o.name AS org_name, m.role FROM projects p "
    "JOIN organisations o ON o.id = p.organisation_id "
    "JOIN memberships m ON m.organisation_id = p.organisation_id AND m.user_id = ? "
)


def project_by_key(
    db: Connection, principal: Principal, key_or_id: str, needed: str = "read", organisation: str | None = None
) -> ProjectAccess:
    """A project the caller can see, by key or id; with several matches ``x-organisation`` decides."""
    rows = db.execute(
        _PROJECT_SQL
        + "WHERE (p.key = ? OR p.id = ?)"
        + (" AND o.name = ?" if organisation else "")
        + " ORDER BY p.created_at",
        (principal.user_id, key_or_id, key_or_id, *([organisation] if organisation else [])),
    ).fetchall()
    visible = [r for r in rows if principal.effective_role(r["organisation_id"], r["role"]) is not None]
    if len(visible) > 1:
        raise ApiError(409, "project key exists in several of your organisations; send x-organisation")
    return _project(visible[0] if visible else None, principal, needed)


def application(
    db: Connection, principal: Principal, organisation: str | None, name: str | None, needed: str = "read"
) -> ProjectAccess:
    """An Airborne application from the ``x-organisation``/``x-application`` headers."""
    if not organisation or not name:
        raise ApiError(
            400,
            "x-organisation and x-application headers are required",
            details=[
                {
                    "field": "x-organisation" if not organisation else "x-application",
                    "code": "required",
                    "message": "header is required",
                }
            ],
        )
    row = db.execute(
        _PROJECT_SQL + "WHERE o.name = ? AND p.key = ?", (principal.user_id, organisation, application_key(name))
    ).fetchone()
    return _project(row, principal, needed)
