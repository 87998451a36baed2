"""Airborne users: sign-up, login (JWT + refresh), the current user (OIDC login: ``oauth.py``).

Each login (or sign-up) starts a session (table ``sessions``) whose id both tokens carry. A refresh
rotates the refresh token (the old one is refused afterwards); presenting a rotated one again
means two parties hold the session's tokens, so the session is revoked. Logout revokes the
caller's session, a password change every session of the user.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from starlette.responses import Response

from control_plane.dialect import Connection
from control_plane.errors import ApiError, conflict, unauthorized
from control_plane.http import Ctx, Router
from control_plane.models import Body
from control_plane.routes.airborne.responses import LoginResponse, UserResponse
from control_plane.security import hash_password, key_hash, same, verify_password
from control_plane.store import new_id, now_iso

router = Router("users")


class CreateUser(Body):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@+-]+$")
    password: str = Field(min_length=8, max_length=256)
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


class Login(Body):
    name: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=256)


class Refresh(Body):
    refresh_token: str = Field(min_length=1, max_length=4096)


class ChangePassword(Body):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=8, max_length=256)


def user_view(db: Connection, user_id: str) -> dict[str, Any]:
    """``{user_id, organisations: [{name, applications: [...], access: [...]}]}`` (Airborne)."""
    orgs = db.execute(
        "SELECT o.id, o.name, m.role FROM memberships m JOIN organisations o ON o.id = m.organisation_id "
        "WHERE m.user_id = ? ORDER BY o.name",
        (user_id,),
    ).fetchall()
    out = []
    for org in orgs:
        apps = db.execute("SELECT name FROM projects WHERE organisation_id = ? ORDER BY key", (org["id"],)).fetchall()
        out.append(
            {
                "name": org["name"],
                "applications": [
                    {"application": a["name"], "organisation": org["name"], "access": [org["role"]]} for a in apps
                ],
                "access": [org["role"]],
            }
        )
    return {"user_id": user_id, "organisations": out}


def start_session(ctx: Ctx, db: Connection, user_id: str, email: str) -> dict[str, Any]:
    """The login answer of a new session (``db`` is in a write transaction)."""
    session_id = new_id()
    pair = ctx.services.tokens.issue(user_id, email, session_id)
    db.execute(
        "INSERT INTO sessions (id, user_id, refresh_hash, created_at) VALUES (?, ?, ?, ?)",
        (session_id, user_id, key_hash(pair.refresh_token), now_iso()),
    )
    return {**user_view(db, user_id), "user_token": pair.as_json()}


def _revoke(db: Connection, reason: str, *, session_id: str | None = None, user_id: str | None = None) -> None:
    """Revoke one session, or every session of a user: their access and refresh tokens stop working."""
    column, value = ("id", session_id) if session_id is not None else ("user_id", user_id)
    db.execute(
        f"UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE {column} = ? AND revoked_at IS NULL",
        (now_iso(), reason, value),
    )


@router.route(
    "POST",
    "/users/create",
    summary="Create a user account",
    body=CreateUser,
    auth=False,
    responses=(409,),
    response=LoginResponse,
)
async def create_user(ctx: Ctx) -> Any:
    body: CreateUser = ctx.body
    password_hash = hash_password(body.password)
    user_id = new_id()
    store = ctx.services.store
    with store.transaction() as db:
        # Login takes a name or an email: a new name must not be someone's email, nor the reverse
        # (or one login would match two accounts).
        email = body.email.lower()
        taken = db.execute(
            "SELECT 1 FROM users WHERE name = ? OR email = ? OR email = ? OR lower(name) = ?",
            (body.name, email, body.name.lower(), email),
        ).fetchone()
        if taken:
            raise conflict("a user with this name or email already exists")
        db.execute(
            "INSERT INTO users (id, name, email, first_name, last_name, password_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user_id, body.name, body.email.lower(), body.first_name, body.last_name, password_hash, now_iso()),
        )
        db.execute(
            "INSERT INTO audit_log (at, actor, action, target, change_reason) VALUES (?, ?, 'user.create', ?, ?)",
            (now_iso(), f"user:{user_id}", f"user:{user_id}", body.change_reason),
        )
        return start_session(ctx, db, user_id, body.email.lower())


@router.route(
    "POST",
    "/users/login",
    summary="Log in with name (or email) and password",
    body=Login,
    auth=False,
    responses=(401, 429),
    response=LoginResponse,
)
async def login(ctx: Ctx) -> Any:
    body: Login = ctx.body
    client = ctx.client_address()
    row = ctx.services.store.one(
        "SELECT id, email, password_hash FROM users WHERE name = ? OR email = ?", (body.name, body.name.lower())
    )
    # One account, whichever spelling (name or email) the attempt used.
    account = f"user:{row['id']}" if row else f"name:{body.name.lower()}"
    guard = ctx.services.login_guard
    guard.check(account, client)
    if not verify_password(row["password_hash"] if row else None, body.password) or row is None:
        guard.failed(account, client)
        raise unauthorized("invalid name or password")
    guard.succeeded(account, client)
    with ctx.services.store.transaction() as db:
        return start_session(ctx, db, row["id"], row["email"])


@router.route(
    "POST",
    "/users/token/refresh",
    summary="Exchange a refresh token for new tokens",
    body=Refresh,
    auth=False,
    responses=(401,),
    response=LoginResponse,
)
async def refresh(ctx: Ctx) -> Any:
    body: Refresh = ctx.body
    tokens = ctx.services.tokens
    claims = tokens.decode(body.refresh_token, "refresh")
    if claims is None:
        raise unauthorized("invalid or expired refresh token")
    with ctx.services.store.transaction() as db:
        row = db.execute(
            "SELECT s.refresh_hash, s.revoked_at, u.email FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.id = ? AND s.user_id = ?",
            (claims["sid"], claims["sub"]),
        ).fetchone()
        if row is None or row["revoked_at"] is not None or row["email"] != claims["email"]:
            raise unauthorized("invalid or expired refresh token")
        reused = not same(row["refresh_hash"], key_hash(body.refresh_token))
        if reused:
            # A rotated token again: whoever holds it and whoever rotated it are not both the
            # owner, and which one is cannot be told, so the session ends for both.
            _revoke(db, "refresh_reuse", session_id=claims["sid"])
        else:
            pair = tokens.issue(claims["sub"], row["email"], claims["sid"])
            db.execute(
                "UPDATE sessions SET refresh_hash = ?, refreshed_at = ? WHERE id = ?",
                (key_hash(pair.refresh_token), now_iso(), claims["sid"]),
            )
            return {**user_view(db, claims["sub"]), "user_token": pair.as_json()}
    # Raised after the transaction, so that the revocation is committed.
    raise unauthorized("invalid or expired refresh token")


def _session_of(ctx: Ctx) -> str:
    session_id = ctx.principal.session_id
    if session_id is None:
        raise ApiError(403, "an API key has no login session; use a user's access token")
    return session_id


@router.route("POST", "/users/logout", summary="End the caller's login session", status=204, responses=(401, 403))
async def logout(ctx: Ctx) -> Any:
    session_id = _session_of(ctx)
    user_id = ctx.principal.user_id
    with ctx.services.store.transaction() as db:
        _revoke(db, "logout", session_id=session_id)
        # Every write leaves an audit entry; ending a session is one (who signed out, when).
        db.execute(
            "INSERT INTO audit_log (at, actor, action, target, change_reason) VALUES (?, ?, 'user.logout', ?, NULL)",
            (now_iso(), f"user:{user_id}", f"user:{user_id}"),
        )
    return Response(status_code=204)


@router.route(
    "POST",
    "/users/password",
    summary="Change the caller's password; ends every session and starts a new one",
    body=ChangePassword,
    responses=(401, 403, 429),
    response=LoginResponse,
)
async def change_password(ctx: Ctx) -> Any:
    body: ChangePassword = ctx.body
    _session_of(ctx)
    user_id = ctx.principal.user_id
    client = ctx.client_address()
    account = f"user:{user_id}"
    guard = ctx.services.login_guard
    # The current password is a login: the same limits keep a stolen token from guessing it.
    guard.check(account, client)
    row = ctx.services.store.one("SELECT email, password_hash FROM users WHERE id = ?", (user_id,))
    if row is None or not verify_password(row["password_hash"], body.current_password):
        guard.failed(account, client)
        raise unauthorized("invalid password")
    guard.succeeded(account, client)
    password_hash = hash_password(body.new_password)
    with ctx.services.store.transaction() as db:
        db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
        _revoke(db, "password_change", user_id=user_id)
        db.execute(
            "INSERT INTO audit_log (at, actor, action, target, change_reason) VALUES (?, ?, 'user.password', ?, ?)",
            (now_iso(), f"user:{user_id}", f"user:{user_id}", body.change_reason),
        )
        return start_session(ctx, db, user_id, row["email"])


@router.route("GET", "/user", summary="The authenticated user and their organisations", response=UserResponse)
async def current_user(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        return user_view(db, ctx.principal.user_id)
