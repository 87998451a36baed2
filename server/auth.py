"""SDK key checks of the edge (DESIGN.md section 4 rules)."""

from __future__ import annotations

from starlette.requests import Request

from server.errors import EdgeError
from server.state import SdkKey, View

SECRET = "server"
PUBLISHABLE = ("client", "mobile")


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def sdk_key(
    view: View, request: Request, *, secret_only: bool = False, allow_query: bool = True, bearer_only: bool = False
) -> SdkKey:
    """The environment key of a request: 401 without a key, 403 for an unknown, revoked or
    wrongly used one. A secret key is never accepted from the query string; with ``bearer_only``
    only ``Authorization: Bearer`` is read (``X-API-Key`` counts as no key: 401)."""
    token = bearer(request) if bearer_only else bearer(request) or request.headers.get("x-api-key")
    from_query = request.query_params.get("publishableKey")
    if token is None and from_query is None:
        required = "an SDK key is required in Authorization: Bearer" if bearer_only else "an SDK key is required"
        raise EdgeError(401, required, headers={"WWW-Authenticate": "Bearer"})
    if token is not None:
        key = view.sdk_key(token)
    else:
        key = view.sdk_key(from_query or "")
        if key is not None and key.kind == SECRET:
            raise EdgeError(403, "secret keys are only accepted in the Authorization header")
        if not allow_query:
            raise EdgeError(403, "this endpoint takes its key in the Authorization header")
    if key is None:
        raise EdgeError(403, "unknown or revoked SDK key")
    if secret_only and key.kind != SECRET:
        raise EdgeError(403, "this endpoint needs a secret (server) key")
    return key
