"""Airborne's OIDC login: ``GET /users/oauth/config`` (ours: whether it is on),
``GET /users/oauth/url``, ``POST /users/oauth/login`` and (with
``--oidc-signup``) ``POST /users/oauth/signup``, against the issuer configured with
``--oidc-issuer`` (:mod:`control_plane.oidc` does the protocol). Without an issuer they answer 400
``unsupported``; password login works either way.

An identity (issuer + ``sub``) logs into the account it is linked to. Login links it on first use
to the account whose email equals the ID token's verified email; otherwise there is no account
(401 ``no_account``) until signup creates one (a verified email is required, and one already in
use is a 409: log in instead, which links it). Errors are in Airborne's shape.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, conflict
from control_plane.http import Ctx, Router
from control_plane.models import Body
from control_plane.oidc import LOGIN_TTL, Identity, OidcClient, OidcError, PendingLogin, new_login, state_hash
from control_plane.routes.airborne.responses import LoginResponse, OAuthConfig, OAuthUrl
from control_plane.routes.users import start_session
from control_plane.store import new_id, now_iso

router = Router("users", shape="airborne")
# Logins in flight at most (each GET /users/oauth/url stores one until it is used or expires):
# an unauthenticated caller cannot grow the table without bound.
MAX_PENDING = 10_000
USER_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@+-")


class OAuthUrlQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    offline: bool = Field(default=False, description="Ask for offline access (a refresh token at the provider)")
    idp: str | None = Field(default=None, max_length=100, description="Identity-provider hint (Keycloak kc_idp_hint)")


class OAuthCode(Body):
    code: str = Field(min_length=1, max_length=4096, description="The authorization code from the redirect")
    state: str | None = Field(
        default=None, max_length=4096, description="The state from /users/oauth/url (required here)"
    )


def _error(e: OidcError) -> ApiError:
    return ApiError(e.status, e.message, code=e.code)


def _client(ctx: Ctx) -> OidcClient:
    client = ctx.services.oidc
    if client is None:
        raise ApiError(
            400,
            "OIDC login is not configured on this control plane (--oidc-issuer)",
            details=[{"field": "provider", "code": "unsupported", "message": "no OIDC issuer is configured"}],
        )
    return client


def _in(seconds: int) -> str:
    """A time ``seconds`` from now, spelled as :func:`now_iso` spells times (they compare as text)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@router.route(
    "GET",
    "/users/oauth/config",
    summary="Whether OIDC login is configured, and signup through it (the dashboard shows its buttons by it)",
    auth=False,
    response=OAuthConfig,
)
async def oauth_config(ctx: Ctx) -> Any:
    client = ctx.services.oidc
    return {"enabled": client is not None, "signup": client is not None and client.config.signup}


@router.route(
    "GET",
    "/users/oauth/url",
    summary="The OIDC authorization URL to send the browser to, and its state",
    query=OAuthUrlQuery,
    auth=False,
    responses=(429, 502),
    response=OAuthUrl,
)
async def oauth_url(ctx: Ctx) -> Any:
    client = _client(ctx)
    q: OAuthUrlQuery = ctx.query
    login = new_login()
    try:
        url = await client.authorization_url(login, offline=q.offline, idp=q.idp)
    except OidcError as e:
        raise _error(e) from None
    with ctx.services.store.transaction() as db:
        db.execute("DELETE FROM oauth_logins WHERE expires_at < ?", (now_iso(),))
        if int(db.execute("SELECT COUNT(*) FROM oauth_logins").fetchone()[0]) >= MAX_PENDING:
            raise ApiError(429, "too many logins in progress; retry later", headers={"Retry-After": "60"})
        db.execute(
            "INSERT INTO oauth_logins (state_hash, nonce, code_verifier, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (state_hash(login.state), login.nonce, login.code_verifier, now_iso(), _in(LOGIN_TTL)),
        )
    return {"auth_url": url, "state": login.state}


def _take_login(ctx: Ctx, state: str | None) -> PendingLogin:
    """The login ``state`` started, removed so that it works once; 400 ``invalid_state`` otherwise."""
    if not state:
        raise ApiError(
            400,
            "state is required: send the state /users/oauth/url returned",
            code="invalid_state",
            details=[{"field": "state", "code": "required", "message": "state is required"}],
        )
    with ctx.services.store.transaction() as db:
        row = db.execute(
            "DELETE FROM oauth_logins WHERE state_hash = ? RETURNING nonce, code_verifier, expires_at",
            (state_hash(state),),
        ).fetchone()
    if row is None or row["expires_at"] < now_iso():
        raise ApiError(400, "unknown, used or expired state: start again at /users/oauth/url", code="invalid_state")
    return PendingLogin(state, row["nonce"], row["code_verifier"])


async def _identity(ctx: Ctx, body: OAuthCode) -> Identity:
    client = _client(ctx)
    login = _take_login(ctx, body.state)
    try:
        return await client.exchange(body.code, login)
    except OidcError as e:
        raise _error(e) from None


def _link(db: Connection, identity: Identity, user_id: str) -> None:
    db.execute(
        "INSERT INTO oauth_identities (issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?)",
        (identity.issuer, identity.subject, user_id, now_iso()),
    )
    db.execute(
        "INSERT INTO audit_log (at, actor, action, target, change_reason) VALUES (?, ?, 'user.link_identity', ?, ?)",
        (now_iso(), f"user:{user_id}", f"user:{user_id}", f"oidc {identity.issuer}"),
    )


def _linked(db: Connection, identity: Identity) -> Row | None:
    row: Row | None = db.execute(
        "SELECT u.id, u.email FROM oauth_identities i JOIN users u ON u.id = i.user_id"
        " WHERE i.issuer = ? AND i.subject = ?",
        (identity.issuer, identity.subject),
    ).fetchone()
    return row


@router.route(
    "POST",
    "/users/oauth/login",
    summary="Complete an OIDC login with the code and state from the redirect",
    body=OAuthCode,
    auth=False,
    responses=(401, 502),
    response=LoginResponse,
)
async def oauth_login(ctx: Ctx) -> Any:
    identity = await _identity(ctx, ctx.body)
    with ctx.services.store.transaction() as db:
        row = _linked(db, identity)
        if row is None and identity.email and identity.email_verified:
            row = db.execute("SELECT id, email FROM users WHERE email = ?", (identity.email,)).fetchone()
            if row is not None:
                _link(db, identity, row["id"])
        if row is None:
            raise ApiError(401, "no account is linked to this identity; sign up first", code="no_account")
        return start_session(ctx, db, row["id"], row["email"])


def _user_name(db: Connection, identity: Identity, email: str) -> str:
    """The provider's username when it is a valid, free name (and nobody's email), else the email."""
    wanted = identity.username
    if wanted and len(wanted) <= 100 and set(wanted) <= USER_NAME_CHARS:
        clash = db.execute(
            "SELECT 1 FROM users WHERE name = ? OR email = ? OR lower(name) = ?",
            (wanted, wanted.lower(), wanted.lower()),
        ).fetchone()
        if clash is None:
            return wanted
    return email


@router.route(
    "POST",
    "/users/oauth/signup",
    summary="Create an account for an OIDC identity (when --oidc-signup is on)",
    body=OAuthCode,
    auth=False,
    responses=(401, 403, 409, 502),
    response=LoginResponse,
)
async def oauth_signup(ctx: Ctx) -> Any:
    config = _client(ctx).config
    if not config.signup:
        raise ApiError(403, "signup through the identity provider is disabled (--oidc-signup)", code="signup_disabled")
    identity = await _identity(ctx, ctx.body)
    if not identity.email or not identity.email_verified:
        raise ApiError(400, "the identity provider did not assert a verified email", code="email_required")
    email = identity.email
    with ctx.services.store.transaction() as db:
        if _linked(db, identity) is not None:
            raise conflict("this identity already has an account; log in with /users/oauth/login")
        if db.execute("SELECT 1 FROM users WHERE email = ? OR lower(name) = ?", (email, email)).fetchone():
            raise conflict("an account with this email exists; log in with /users/oauth/login to link it")
        user_id = new_id()
        # No password: password login stays impossible for this account (an empty hash never verifies).
        db.execute(
            "INSERT INTO users (id, name, email, first_name, last_name, password_hash, created_at)"
            " VALUES (?, ?, ?, '', '', '', ?)",
            (user_id, _user_name(db, identity, email), email, now_iso()),
        )
        db.execute(
            "INSERT INTO audit_log (at, actor, action, target, change_reason) VALUES (?, ?, 'user.create', ?, ?)",
            (now_iso(), f"user:{user_id}", f"user:{user_id}", f"oidc signup {identity.issuer}"),
        )
        _link(db, identity, user_id)
        return start_session(ctx, db, user_id, email)
