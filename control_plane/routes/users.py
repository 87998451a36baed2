"""Airborne users: sign-up, login (JWT + refresh), the current user; OAuth is not offered."""

from __future__ import annotations

import sqlite3
from typing import Any

from pydantic import Field

from control_plane.errors import ApiError, conflict, unauthorized
from control_plane.http import Ctx, Router
from control_plane.models import Body
from control_plane.security import hash_password, verify_password
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


class OAuthCode(Body):
    code: str = Field(max_length=4096)
    state: str | None = Field(default=None, max_length=4096)


def user_view(db: sqlite3.Connection, user_id: str) -> dict[str, Any]:
    """``{user_id, organisations: [{name, applications: [...], access: [...]}]}`` (Airborne)."""
    orgs = db.execute(
        "SELECT o.id, o.name, m.role FROM memberships m JOIN organisations o ON o.id = m.organisation_id "
        "WHERE m.user_id = ? ORDER BY o.name",
        (user_id,),
    ).fetchall()
    out = []
    for org in orgs:
        apps = db.execute("SELECT key FROM projects WHERE organisation_id = ? ORDER BY key", (org["id"],)).fetchall()
        out.append(
            {
                "name": org["name"],
                "applications": [
                    {"application": a["key"], "organisation": org["name"], "access": [org["role"]]} for a in apps
                ],
                "access": [org["role"]],
            }
        )
    return {"user_id": user_id, "organisations": out}


def _login_response(ctx: Ctx, db: sqlite3.Connection, user_id: str, email: str) -> dict[str, Any]:
    return {**user_view(db, user_id), "user_token": ctx.services.tokens.issue(user_id, email).as_json()}


@router.route("POST", "/users/create", summary="Create a user account", body=CreateUser, auth=False, responses=(409,))
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
        return _login_response(ctx, db, user_id, body.email.lower())


@router.route(
    "POST",
    "/users/login",
    summary="Log in with name (or email) and password",
    body=Login,
    auth=False,
    responses=(401, 429),
)
async def login(ctx: Ctx) -> Any:
    body: Login = ctx.body
    client = ctx.request.client.host if ctx.request.client else "unknown"
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
    with ctx.services.store.read() as db:
        return _login_response(ctx, db, row["id"], row["email"])


@router.route(
    "POST",
    "/users/token/refresh",
    summary="Exchange a refresh token for new tokens",
    body=Refresh,
    auth=False,
    responses=(401,),
)
async def refresh(ctx: Ctx) -> Any:
    body: Refresh = ctx.body
    claims = ctx.services.tokens.decode(body.refresh_token, "refresh")
    if claims is None:
        raise unauthorized("invalid or expired refresh token")
    row = ctx.services.store.one("SELECT id, email FROM users WHERE id = ?", (claims["sub"],))
    if row is None or row["email"] != claims["email"]:
        raise unauthorized("invalid or expired refresh token")
    with ctx.services.store.read() as db:
        return _login_response(ctx, db, row["id"], row["email"])


def _no_oauth() -> ApiError:
    return ApiError(
        400,
        "the configured authentication provider does not support OAuth/OIDC login",
        details=[{"field": "provider", "code": "unsupported", "message": "provider does not support OAuth"}],
    )


@router.route("GET", "/users/oauth/url", summary="OAuth authorization URL (not supported by this provider)", auth=False)
async def oauth_url(ctx: Ctx) -> Any:
    raise _no_oauth()


@router.route(
    "POST", "/users/oauth/login", summary="OAuth login (not supported by this provider)", body=OAuthCode, auth=False
)
async def oauth_login(ctx: Ctx) -> Any:
    raise _no_oauth()


@router.route(
    "POST", "/users/oauth/signup", summary="OAuth signup (not supported by this provider)", body=OAuthCode, auth=False
)
async def oauth_signup(ctx: Ctx) -> Any:
    raise _no_oauth()


@router.route("GET", "/user", summary="The authenticated user and their organisations")
async def current_user(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        return user_view(db, ctx.principal.user_id)
