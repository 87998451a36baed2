"""SDK key checks of the edge (DESIGN.md section 4 rules), and the one answer to a key or name
the worker's view does not hold (:func:`unknown`): "unknown" only once a snapshot is loaded."""

from __future__ import annotations

from starlette.requests import Request

from contract.sdk_keys import PUBLISHABLE, SECRET
from server.errors import EdgeError
from server.state import SdkKey, View

__all__ = [
    "PUBLISHABLE",
    "SECRET",
    "authorization_token",
    "bearer",
    "devcycle_key",
    "not_loaded",
    "sdk_key",
    "unknown",
]


# Seconds an SDK should wait before retrying while this worker has no snapshot (it polls the
# store far more often; a publish is picked up within the poll interval).
NOT_LOADED_RETRY_AFTER = "1"


def not_loaded(message: str = "this environment's snapshot is not loaded yet") -> EdgeError:
    """503 + Retry-After: the answer depends on a snapshot this worker has not loaded."""
    return EdgeError(503, message, headers={"Retry-After": NOT_LOADED_RETRY_AFTER})


def unknown(view: View, status: int, message: str) -> EdgeError:
    """The answer to a key or name ``view`` does not hold: ``status`` (403 unknown or revoked
    key, 404 no such widget or application) once a snapshot is loaded. Before that (a fresh host
    before the first publish or sync, a store that cannot be read) it may well be valid, and an
    SDK told "revoked" may give up for good: 503 + Retry-After (DESIGN.md section 4)."""
    if not view.loaded:
        return not_loaded("no snapshot is loaded yet on this edge worker")
    return EdgeError(status, message)


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
    wrongly used one (503 while no snapshot is loaded: :func:`unknown`). A secret key is never
    accepted from the query string; with ``bearer_only`` only ``Authorization: Bearer`` is read
    (``X-API-Key`` counts as no key: 401)."""
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
        raise unknown(view, 403, "unknown or revoked SDK key")
    if secret_only and key.kind != SECRET:
        raise EdgeError(403, "this endpoint needs a secret (server) key")
    return key


def authorization_token(request: Request) -> str | None:
    """The key in ``Authorization``: DevCycle's SDKs send the bare key, others ``Bearer <key>``."""
    header = request.headers.get("authorization", "").strip()
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer":
        return token.strip() or None
    return header if " " not in header else None


def devcycle_key(view: View, token: str | None, kinds: tuple[str, ...], *, where: str) -> SdkKey:
    """The DevCycle SDK key ``token`` (sent ``where``): 401 without one, 403 for an unknown or
    revoked key or one of a kind the route does not take (503 while no snapshot is loaded)."""
    if not token:
        raise EdgeError(401, f"a DevCycle SDK key is required in {where}", headers={"WWW-Authenticate": "Bearer"})
    key = view.sdk_key(token)
    if key is None:
        raise unknown(view, 403, "unknown or revoked SDK key")
    if key.kind not in kinds:
        raise EdgeError(403, f"this endpoint takes a {' or '.join(kinds)} SDK key, not a {key.kind} key")
    return key
